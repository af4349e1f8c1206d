"""Async workers scaled on their backlog, to zero and back: a Ray Serve custom autoscaling policy.

SageMaker scales an asynchronous endpoint on ApproximateBacklogSizePerInstance (requests waiting or running,
divided by the instances). An async worker takes its requests from the durable queue itself, so Ray Serve
sees no requests in flight at its handles and its default policy would keep it at its minimum. Instead the
worker deployment `async-worker.<endpoint>` runs `BacklogPolicy`, a class-based policy in Ray Serve's
controller (the shape of Ray's own AsyncInferenceAutoscalingPolicy): it reads the backlog from the queue -
the SQLite file, or the Kafka consumer group's lag - every `poll_interval_s` in a one-shot background
thread, and asks for ceil(backlog / target_backlog_per_instance) replicas, within min/max. Because the
policy reads the queue and not the replicas, a worker at zero replicas is woken by the backlog: the gateway
keeps accepting requests (they are durable in the queue before the 202), the next poll sees them, and Ray
Serve starts a replica at once (no upscale delay from zero). Scaling in waits `idle_s` (downscale_delay_s
and downscale_to_zero_delay_s): to zero only once the queue has been empty that long.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the policy runs in Ray Serve's controller: no import of the deploy-file schema at run time
    from serving.spec import AsyncSpec

log = logging.getLogger("ray.serve")

POLICY = "serving.asyncq.scaling:BacklogPolicy"


def autoscaling_config(endpoint: str, spec: AsyncSpec, kafka_bootstrap: str | None = None) -> dict:
    """The worker deployment's Ray Serve autoscaling_config for an endpoint's AsyncSpec."""
    s = spec.scaling
    return {
        "min_replicas": s.min_instances, "initial_replicas": s.min_instances, "max_replicas": s.max_instances,
        "upscale_delay_s": 0.0, "downscale_delay_s": s.idle_s, "downscale_to_zero_delay_s": s.idle_s,
        "policy": {"policy_function": POLICY, "policy_kwargs": {
            "endpoint": endpoint, "queue": queue_ref(spec, endpoint, kafka_bootstrap), "target": s.target_backlog_per_instance,
            "poll_interval_s": s.poll_interval_s}},
    }


def queue_ref(spec: AsyncSpec, endpoint: str, kafka_bootstrap: str | None = None) -> dict:
    """Where the policy reads an endpoint's backlog (JSON: policy_kwargs travel as JSON)."""
    if spec.queue == "kafka":
        from serving.asyncq.kafka import topic_and_group

        topic, group = topic_and_group(spec, endpoint)
        return {"kind": "kafka", "bootstrap": kafka_bootstrap, "topic": topic, "group": group}
    return {"kind": "sqlite", "path": spec.queue_path}


def desired_replicas(backlog: int, target: float, low: int, high: int) -> int:
    """Replicas for a backlog: ceil(backlog / target) within [low, high]; at least one while any request waits."""
    want = math.ceil(backlog / target) if backlog > 0 else 0
    return max(low, min(high, want))


def sqlite_backlog(path: str, endpoint: str) -> int:
    """Requests of `endpoint` queued or running in the SQLite queue (0 when the file does not exist yet)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    except sqlite3.OperationalError:
        return 0
    try:
        return db.execute("SELECT COUNT(*) FROM requests WHERE endpoint=? AND state IN ('queued', 'running')",
                          (endpoint,)).fetchone()[0]
    except sqlite3.OperationalError:  # no table yet: nothing was ever queued
        return 0
    finally:
        db.close()


def read_backlog(queue: dict, endpoint: str) -> int:
    if queue["kind"] == "kafka":
        from serving.asyncq.kafka import consumer_lag

        return consumer_lag(queue["bootstrap"], queue["topic"], queue["group"])
    return sqlite_backlog(queue["path"], endpoint)


class BacklogPolicy:
    """Ray Serve calls an instance with each autoscaling context (every control-loop tick); it answers with
    the replicas the last backlog reading asks for. Readings happen in a background thread, one at a time,
    so a slow queue never holds up Serve's controller."""

    def __init__(self, endpoint: str, queue: dict, target: float, poll_interval_s: float = 1.0):
        self.endpoint, self.queue, self.target, self.poll_interval_s = endpoint, queue, target, poll_interval_s
        self.backlog = 0
        self._thread: threading.Thread | None = None
        self._polled_at = float("-inf")

    def _poll(self) -> None:
        try:
            self.backlog = read_backlog(self.queue, self.endpoint)
        except Exception as err:  # noqa: BLE001 - an unreadable queue keeps the last reading
            log.warning("async autoscaling of %s: cannot read the backlog: %s", self.endpoint, err)

    def __call__(self, ctx) -> tuple[int, dict]:
        now = time.monotonic()
        if (self._thread is None or not self._thread.is_alive()) and now - self._polled_at >= self.poll_interval_s:
            self._polled_at = now
            self._thread = threading.Thread(target=self._poll, name=f"ferry-backlog-{self.endpoint}", daemon=True)
            self._thread.start()
        want = desired_replicas(self.backlog, self.target, ctx.capacity_adjusted_min_replicas,
                                ctx.capacity_adjusted_max_replicas)
        return want, {"backlog": self.backlog}
