"""Turn the serving part of a deploy file into Ray Serve applications and run them.

One application per endpoint (named after it, route_prefix None so only Ferry's gateway reaches it):
an `EndpointRouter` ingress bound to one `ModelServer` deployment per variant. One `ferry` application
at route prefix / holds the gateway with the HTTP routes.
"""

from __future__ import annotations

import logging
import os

import ray
from ray import serve
from ray.serve.api import RunTarget, _run_many

from serving.gateway import Gateway
from serving.model_server import ModelServer
from serving.router import EndpointRouter
from serving.status import wait_running
from serving.spec import EndpointSpec, ModelSpec, ServerSpec, VariantSpec

log = logging.getLogger(__name__)

GATEWAY_APP = "ferry"
GATEWAY_MAX_ONGOING = 1024
QUIET = {"enable_access_log": False, "log_level": "WARNING"}  # per-request access logs cost ~1 ms each


def _replicas(v: VariantSpec) -> dict:
    if v.autoscaling is None:
        return {"num_replicas": v.replicas}
    a = v.autoscaling.model_dump(exclude_none=True)
    return {"autoscaling_config": a}


def variant_deployment(v: VariantSpec, model: ModelSpec):
    """The bound ModelServer of one production variant."""
    return ModelServer.options(
        name=f"variant-{v.name}",
        max_ongoing_requests=v.max_ongoing_requests,
        ray_actor_options={"num_cpus": v.num_cpus},
        logging_config=QUIET,
        **_replicas(v),
    ).bind(model.model_dump(), v.name, v.batching.model_dump() if v.batching else None)


def endpoint_app(ep: EndpointSpec, models: dict[str, ModelSpec]):
    """The application of one endpoint: router ingress plus a model deployment per variant."""
    variants = {v.name: variant_deployment(v, models[v.model]) for v in ep.variants}
    return EndpointRouter.options(
        name="router", max_ongoing_requests=ep.router_max_ongoing_requests,
        ray_actor_options={"num_cpus": ep.router_num_cpus}, logging_config=QUIET,
    ).bind(ep.model_dump(), variants)


def gateway_app(server: ServerSpec, endpoints: list[str]):
    return Gateway.options(
        name="gateway", max_ongoing_requests=GATEWAY_MAX_ONGOING, ray_actor_options={"num_cpus": 0.25},
        logging_config=QUIET,
    ).bind(endpoints, server.max_payload_bytes, server.auth_token)


def start_ray(server: ServerSpec, address: str | None = None) -> None:
    """Start (or join) Ray with enough logical CPUs for Ferry's fractional replicas, then Serve."""
    if server.ingress == "haproxy":
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "logging_level": logging.WARNING}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=server.ray_num_cpus or max(8, os.cpu_count() or 1), **kwargs)
    serve.start(http_options={"host": server.host, "port": server.http_port, "location": "HeadOnly"})


def deploy(models: list[ModelSpec], endpoints: list[EndpointSpec], server: ServerSpec,
           timeout_s: float = 180.0) -> None:
    """Deploy every endpoint, then the gateway; raise with the reason if something cannot start."""
    by_name = {m.name: m for m in models}
    for ep in endpoints:
        log.info("deploying endpoint %s (%d variant(s))", ep.name, len(ep.variants))
        _run(endpoint_app(ep, by_name), ep.name, None, timeout_s)
    _run(gateway_app(server, [ep.name for ep in endpoints]), GATEWAY_APP, "/", timeout_s)


def _run(app, name: str, route_prefix: str | None, timeout_s: float) -> None:
    _run_many([RunTarget(app, name=name, route_prefix=route_prefix)],
              wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
    wait_running(name, timeout_s)


def shutdown() -> None:
    serve.shutdown()
    ray.shutdown()
