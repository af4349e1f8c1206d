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


APPLIED = ("HEALTHY", "UPSCALING", "DOWNSCALING")  # a deployment's states once every replica runs its config


def wait_applied(name: str, deployment: str, timeout_s: float, poll_s: float = 0.05) -> None:
    """Block until the config just given to Ray Serve (deploy_apps) runs on every replica of `deployment` of
    application `name`; raise DeployError with Serve's reasons if it fails or takes longer than `timeout_s`.

    Ray Serve marks the application DEPLOYING before deploy_apps returns (the controller's apply_config sets
    the new target in the call); its control loop then gives the deployment the new target version (UPDATING),
    calls each replica's `reconfigure` with a new user_config, and counts a replica at the target version once
    that call has returned; the deployment is HEALTHY again, and the application past DEPLOYING, only when
    every replica is. So "past DEPLOYING and the deployment HEALTHY" means every replica has applied it. An
    autoscaling gateway may then be UPSCALING/DOWNSCALING (the application RUNNING): its replicas are at the new
    version too (a config change while scaling makes it UPDATING, and new replicas start with the new config)."""
    deadline = time.monotonic() + timeout_s
    summary = None
    while time.monotonic() < deadline:
        summary = app_summary(name)
        if summary is None:
            raise DeployError(f"application {name!r} is gone")
        status = summary["deployments"].get(deployment, {}).get("status")
        if summary["status"] != "DEPLOYING" and status in APPLIED:
            return
        if summary["status"] == "DEPLOY_FAILED" or status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise DeployError(_explain(name, summary))
        time.sleep(poll_s)
    raise DeployError(f"deployment {deployment!r} of application {name!r} did not apply its new config within "
                      f"{timeout_s:g} s: " + (_explain(name, summary) if summary else "no status"))


def _explain(name: str, summary: dict) -> str:
    parts = [f"application {name!r} is {summary['status']}"]
    if summary["message"]:
        parts.append(summary["message"])
    for d, s in summary["deployments"].items():
        if s["status"] != "HEALTHY":
            parts.append(f"deployment {d}: {s['status']} {s['message']}".strip())
    return "; ".join(parts)
