"""The control plane: live traffic state (weights, shadows, rollouts), applied without restarting replicas.

`Control` (one replica of the `ferry` application) owns the desired state, keeps it on disk across
restarts, and applies it the way Ray Serve applies a lightweight change: it re-applies the application's own
config document with the gateway's `user_config` set to the state, so every gateway replica's `reconfigure`
runs in place. The gateway serves the control API (/control/...) and forwards it here.
"""
