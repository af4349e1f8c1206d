"""Application and replica status from Ray Serve, and waiting for an application with a deadline."""

from __future__ import annotations

import time

from ray import serve


class DeployError(RuntimeError):
    """An application that failed to deploy or did not become ready in time; the message says why."""


def app_summary(name: str) -> dict | None:
    """Status, message and per-deployment replica counts of one application (None if absent)."""
    app = serve.status().applications.get(name)
    if app is None:
        return None
    return {
        "status": str(app.status.value if hasattr(app.status, "value") else app.status),
        "message": app.message,
        "deployments": {
            d: {"status": str(getattr(s.status, "value", s.status)), "message": s.message,
                "replicas": {str(getattr(k, "value", k)): v for k, v in s.replica_states.items()}}
            for d, s in app.deployments.items()
        },
    }


def wait_running(name: str, timeout_s: float) -> None:
    """Block until the application is RUNNING; raise DeployError with Serve's reasons otherwise."""
    deadline = time.monotonic() + timeout_s
    summary = None
    while time.monotonic() < deadline:
        summary = app_summary(name)
        if summary and summary["status"] == "RUNNING":
            return
        if summary and summary["status"] in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise DeployError(_explain(name, summary))
        time.sleep(0.25)
    raise DeployError(f"application {name!r} not running after {timeout_s:.0f}s: "
                      + (_explain(name, summary) if summary else "no status"))


def _explain(name: str, summary: dict) -> str:
    parts = [f"application {name!r} is {summary['status']}"]
    if summary["message"]:
        parts.append(summary["message"])
    for d, s in summary["deployments"].items():
        if s["status"] != "HEALTHY":
            parts.append(f"deployment {d}: {s['status']} {s['message']}".strip())
    return "; ".join(parts)
