"""Turn the serving part of a deploy file into Ray Serve applications and run them.

One Ray Serve application, `ferry`, at route prefix /: the gateway ingress (protocol adapters and each
endpoint's router) bound to one `ModelServer` deployment per endpoint variant, named
``<endpoint>.<variant>``. A single application keeps one network hop between the proxy and a model, and
lets gRPC clients reach every endpoint by model name without Ray's `application` metadata.
"""

from __future__ import annotations

import logging
import os

import ray
from ray import serve
from ray.serve.api import RunTarget, _run_many

from serving.gateway import Gateway
from serving.model_server import ModelServer
from serving.status import wait_running
from serving.spec import EndpointSpec, ModelSpec, ServerSpec, VariantSpec

log = logging.getLogger(__name__)

APP_NAME = "ferry"
GRPC_SERVICER = "serving.protos.inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"
GATEWAY_MAX_ONGOING = 1024
QUIET = {"enable_access_log": False, "log_level": "WARNING"}  # per-request access logs cost ~1 ms each


def _replicas(v: VariantSpec) -> dict:
    if v.autoscaling is None:
        return {"num_replicas": v.replicas}
    a = v.autoscaling.model_dump(exclude_none=True)
    return {"autoscaling_config": a}


def variant_deployment(endpoint: str, v: VariantSpec, model: ModelSpec):
    """How the gateway reaches one production variant: its bound ModelServer (with the batching the
    gateway applies), or, in-process, the arguments of its runner."""
    batching = v.batching.model_dump() if v.batching else None
    if v.in_process:
        return {"model": model.model_dump(), "variant": v.name, "batching": batching}
    bound = ModelServer.options(
        name=f"{endpoint}.{v.name}",
        max_ongoing_requests=v.max_ongoing_requests,
        max_queued_requests=v.max_queued_requests,
        ray_actor_options={"num_cpus": v.num_cpus},
        logging_config=QUIET,
        **_replicas(v),
    ).bind(model.model_dump(), v.name)  # a remote variant's batches are gathered in the gateway
    return {"remote": bound, "batching": batching,
            "scales_to_zero": v.autoscaling is not None and v.autoscaling.min_replicas == 0}


def build_app(models: list[ModelSpec], endpoints: list[EndpointSpec], server: ServerSpec,
              kafka_bootstrap: str | None = None, schedules: list | None = None, features: dict | None = None):
    """The `ferry` application: gateway ingress bound to every endpoint's variant deployments."""
    by_name = {m.name: m for m in models}
    variants = {ep.name: {v.name: variant_deployment(ep.name, v, by_name[v.model]) for v in ep.variants}
                for ep in endpoints}
    return Gateway.options(
        name="gateway", num_replicas=server.gateway_replicas, max_ongoing_requests=GATEWAY_MAX_ONGOING,
        ray_actor_options={"num_cpus": server.gateway_num_cpus}, logging_config=QUIET,
    ).bind([ep.model_dump() for ep in endpoints], variants, server.max_payload_bytes, server.auth_token,
           kafka_bootstrap, server.ground_truth_dir, monitor_deployment(schedules or []), features)


def monitor_deployment(schedules: list):
    """The bound MonitorRunner when there are monitoring schedules, else None."""
    if not schedules:
        return None
    from serving.monitoring import MonitorRunner

    return MonitorRunner.options(name="monitor", ray_actor_options={"num_cpus": 0.25}, logging_config=QUIET).bind(
        [s.model_dump(mode="json") for s in schedules])


def start_ray(server: ServerSpec, address: str | None = None, verbose: bool = False) -> None:
    """Start (or join) Ray with enough logical CPUs for Ferry's fractional replicas, then Serve.

    Unless `verbose`, Ray's and Serve's INFO lines (and the actors' logs) stay out of the terminal."""
    if server.ingress == "haproxy":
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    for var in ("RAY_SERVE_GRPC_MAX_MESSAGE_SIZE", "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"):
        os.environ.setdefault(var, str(server.grpc_max_message_bytes))
    if server.throughput_optimized:  # Ray Serve's own recommendation for small, fast models
        os.environ.setdefault("RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD", "0")
        os.environ.setdefault("RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP", "0")
    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "logging_level": logging.INFO if verbose else logging.WARNING,
                  "log_to_driver": verbose}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=server.ray_num_cpus or max(8, os.cpu_count() or 1), **kwargs)
    logging.getLogger("ray.serve").setLevel(logging.INFO if verbose else logging.WARNING)
    serve.start(http_options={"host": server.host, "port": server.http_port, "location": "HeadOnly"},
                grpc_options={"port": server.grpc_port, "grpc_servicer_functions": [GRPC_SERVICER]})


def deploy(models: list[ModelSpec], endpoints: list[EndpointSpec], server: ServerSpec,
           timeout_s: float = 180.0, app_name: str = APP_NAME, route_prefix: str = "/",
           kafka_bootstrap: str | None = None, schedules: list | None = None, features: dict | None = None) -> None:
    """Deploy (or update in place) the `ferry` application; raise with the reason if it cannot start.

    `features` ({"settings": FeatureStoreSettings dump, "groups": [FeatureGroupSpec dumps]}) mounts the
    feature store's REST API in the gateway."""
    log.info("deploying %d endpoint(s): %s", len(endpoints), ", ".join(ep.name for ep in endpoints))
    app = build_app(models, endpoints, server, kafka_bootstrap, schedules, features)
    _run_many([RunTarget(app, name=app_name, route_prefix=route_prefix)],
              wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
    wait_running(app_name, timeout_s)


def shutdown() -> None:
    serve.shutdown()
    ray.shutdown()
