"""Asynchronous inference (work in progress, not wired yet): the durable queue of accepted requests."""
