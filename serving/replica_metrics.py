"""Replica and status gauges of the application's Ray Serve deployments, read from Serve's controller when
/metrics is scraped (ferry_serve_replicas, ferry_serve_deployment_status; declared in serving.metrics)."""

from __future__ import annotations

from serving.metrics import SERVE_REPLICAS, SERVE_STATUS

STATES = ("STARTING", "UPDATING", "RECOVERING", "RUNNING", "STOPPING", "PENDING_MIGRATION")
STATUSES = ("UPDATING", "HEALTHY", "UNHEALTHY", "DEPLOY_FAILED", "UPSCALING", "DOWNSCALING")


def families(deployments: dict[str, dict]) -> list:
    """The two families for `deployments` (name -> {"status": str, "replicas": {state: count}}): every state
    and status of each deployment, 0 where it has none, so that "no RUNNING replica" is a series at 0."""
    replicas, status = SERVE_REPLICAS.family(), SERVE_STATUS.family()
    for name, d in deployments.items():
        for state in STATES:
            replicas.add_metric([name, state], float(d["replicas"].get(state, 0)))
        for s in STATUSES:
            status.add_metric([name, s], 1.0 if d["status"] == s else 0.0)
    return [replicas, status]


def read(app_name: str) -> dict[str, dict]:
    """Each deployment of the application with its status and replica counts by state (blocking: a controller
    call; run it off the event loop)."""
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return {}
    return {name: {"status": str(getattr(d.status, "value", d.status)),
                   "replicas": {str(getattr(k, "value", k)): n for k, n in d.replica_states.items()}}
            for name, d in app.deployments.items()}


def exposition(app_name: str) -> bytes:
    """The gauges in Prometheus's text format."""
    from prometheus_client import generate_latest

    class _Families:
        def collect(self):
            return families(read(app_name))

    return generate_latest(_Families())
