"""The gateway: the ingress deployment of the `ferry` application (route prefix /).

It builds the data plane (each endpoint with its variants and capture) once per replica and dispatches:
SageMaker routes and KServe V2 REST over HTTP, the V2 `inference.GRPCInferenceService` RPCs (method
names are the RPC names: Ray Serve's gRPC proxy dispatches on them), `/ping` and `/metrics`, and the
routes that are not inference - ground truth, monitoring executions, the feature store's REST API.
Dispatch is one dict lookup for the inference routes, computed at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

from core.errors import FerryError, internal_error, quote
from serving import metrics_hub, openapi, replica_metrics
from serving.adapters import async_ as async_adapter
from serving.adapters import grpc as grpc_adapter
from serving.adapters import sagemaker, v2rest
from serving.adapters.control import ControlAPI
from serving.adapters.http import authorized, headers_of, json_response, read_body
from serving.capture.factory import make_sink
from serving.control import green
from serving.control.state import TrafficState
from serving.dataplane import PROTOCOLS, DataPlane
from serving.endpoint import Endpoint, EndpointCapture
from serving.metrics import ServingMetrics
from serving.pipeline import PipelineRunner
from serving import serverless
from serving.serverless import ServerlessVariant
from serving.shadow import Shadow
from serving.sigv4 import SigV4Verifier
from serving.spec import EndpointSpec, ModelSpec, ServerSpec, VariantSpec
from serving.variants import ModelRunner, Remote, RemoteVariant

if TYPE_CHECKING:
    from featurestore.settings import FeatureStoreConfig

log = logging.getLogger(__name__)
FEATURE_ROUTES = {"FeatureGroup", "BatchGetRecord", "get-online-features", "feature-groups"}


@serve.deployment
class Gateway:
    """Ingress of the `ferry` application; one DataPlane per replica."""

    def __init__(self, endpoints: list[EndpointSpec], models: dict[str, ModelSpec], server: ServerSpec,
                 remote: dict[str, Remote], kafka_bootstrap: str | None = None, monitor=None,
                 features: FeatureStoreConfig | None = None, control=None, async_workers=None):
        """`remote` maps "<endpoint>.<variant>" of variants with their own deployment to their Remote;
        `control` is the Control deployment's handle."""
        server.check_control_exposure()
        self.metrics = ServingMetrics()
        # every replica's series on /metrics, and its counts for the control plane's rollouts and shadow report
        self.reporter = metrics_hub.reporter_for(self.metrics.registry, self.metrics.snapshot)
        self.control = ControlAPI(control, server.control_secret)
        self._control = control
        self._features, self._gateway_replicas = features, server.gateway_replicas  # for green variants
        self.plane = DataPlane({ep.name: _endpoint(ep, models, remote, kafka_bootstrap, features, self.metrics,
                                                   server.gateway_replicas)
                                for ep in endpoints},
                               server.max_payload_bytes, server.auth_token, self.metrics,
                               limits={"grpc": server.grpc_max_message_bytes}, sigv4_verifier=_sigv4(server))
        self.default = endpoints[0].name if endpoints else None
        self.ground_truth_dir = Path(server.ground_truth_dir)
        self.monitor = monitor  # the MonitorRunner's handle when the deploy file has monitoring schedules
        self.features = _feature_api(features) if features else None  # featurestore-runtime routes, in-process
        self.routes = {f"/endpoints/{ep.name}/invocations": ep.name for ep in endpoints}
        self.async_doors = async_adapter.front_doors(endpoints, kafka_bootstrap)
        self.async_workers = async_workers  # bound here so that the AsyncWorker deployments are part of the app
        if self.default is not None:
            self.routes["/invocations"] = self.default

    async def reconfigure(self, traffic: dict) -> None:
        """The control plane's live traffic state (the deployment's user_config), applied in place: variants
        added at run time are loaded (off the event loop), removed ones dropped, then the weights set."""
        state = TrafficState.model_validate(traffic)
        for name, t in state.endpoints.items():
            ep = self.plane.endpoints.get(name)
            if ep is None:
                continue
            for variant, added in t.added.items():
                if variant in ep.runners:
                    continue
                try:  # checked by the control plane first; never fail the update of production's traffic
                    ep.runners[variant] = await asyncio.to_thread(green.runner, name, added, self._features,
                                                                  self._gateway_replicas)
                except Exception:  # noqa: BLE001 - the rollout waits for it, then rolls back
                    log.exception("green variant %s/%s could not be built", name, variant)
                    continue
                self.metrics.declare(name, variant, PROTOCOLS)
            for variant in t.removed:
                ep.runners.pop(variant, None)
            ep.set_weights(t.weights, replace=True)
        log.info("traffic state version %d applied", state.version)

    def __del__(self):
        """Ray Serve calls this on replica shutdown: stop pushing metrics, flush captured records."""
        if getattr(self, "reporter", None) is not None:
            self.reporter.stop()
        for ep in getattr(getattr(self, "plane", None), "endpoints", {}).values():
            ep.close()

    async def __call__(self, request: Request) -> Response:
        """Every HTTP route; an unexpected exception is a 500 naming an incident id (the traceback is logged)."""
        try:
            scope = request.scope
            path = scope["path"]
            if scope.get("root_path"):
                path = path.removeprefix(scope["root_path"])
            endpoint = self.routes.get(path)
            if endpoint is not None and scope["method"] == "POST":  # the inference routes, without another call
                return await sagemaker.invoke(self.plane, request, endpoint)
            return await self._route(request, path)
        except Exception:  # noqa: BLE001 - a bug: no client input may reach here (tests/unit/test_hostile_inputs.py)
            error = internal_error(log, f"{request.method} {request.scope['path'][:80]!r}")
            v2_route = request.scope["path"].startswith("/v2")
            return v2rest.error_response(error) if v2_route else sagemaker.error_response(error)

    async def _route(self, request: Request, path: str) -> Response:
        """The routes other than an endpoint's invocations (`path`: the request's, without the root path)."""
        method = request.method
        parts = [p for p in path.split("/") if p]
        if parts and parts[0] == "v2":
            return await v2rest.handle(self.plane, request, parts[1:], method)
        if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations" and method == "POST":
            return await sagemaker.invoke(self.plane, request, parts[1])  # an unknown endpoint: its 4xx
        if len(parts) >= 3 and parts[0] == "endpoints" and parts[2] == "async-invocations":
            return await async_adapter.route(self.async_doors, self.plane, request, parts, method)
        if parts and parts[0] == "control":
            return await self.control.handle(request, parts[1:], method)
        if path == "/ping" and method == "GET":
            ok = self.default is not None and await self.plane.endpoints[self.default].ready()
            return Response(status_code=200 if ok else 503)
        if path == "/openapi.json" and method == "GET":
            return Response(openapi.document(), media_type="application/json")
        if path == "/metrics" and method == "GET":
            body = await self.reporter.exposition() if self.reporter else self.metrics.exposition()
            body += await asyncio.to_thread(replica_metrics.exposition, serve.get_replica_context().app_name)
            if self.monitor is not None:
                body += await self.monitor.metrics.remote()
            if self.async_doors:  # the workers' own series come through the metrics hub
                body += await asyncio.to_thread(async_adapter.backlog_exposition, self.async_doors)
            if self._control is not None:
                body += await self._control.metrics.remote()
            return Response(body, media_type="text/plain; version=0.0.4")
        try:
            request = await authorized(self.plane, request)
            if parts and parts[0] in FEATURE_ROUTES and self.features is not None:
                return await _call_asgi(self.features, request, self.plane.max_payload_bytes)
            if path == "/ground-truth" and method == "POST":
                return await self._ground_truth(request)
            if path == "/monitoring/executions" and method == "GET":
                q = request.query_params
                found = [] if self.monitor is None else await self.monitor.executions.remote(
                    q.get("endpoint"), q.get("schedule"))
                return json_response({"executions": found})
        except FerryError as err:
            return sagemaker.error_response(err.error)
        return json_response({"error": f"no route {method} {quote(path)}"}, 404)

    def describe(self) -> dict[str, list[dict]]:
        """Each endpoint's variants: weight and where each runs (for `ferry status`)."""
        return {name: ep.describe() for name, ep in self.plane.endpoints.items()}

    async def _ground_truth(self, request: Request) -> Response:
        """SageMaker ground-truth records (a JSON list or JSON Lines) for an endpoint's monitors."""
        from monitor import ground_truth

        endpoint = request.query_params.get("endpoint") or self.default
        if endpoint not in self.plane.endpoints:
            return json_response({"error": f"unknown endpoint {quote(endpoint)}; endpoints: {self.plane.names}"}, 404)
        body = await read_body(request, headers_of(request), self.plane.max_payload_bytes)
        try:
            text = body.decode("utf-8").strip()
            doc = (orjson.loads(text) if text.startswith("[")
                   else [orjson.loads(ln) for ln in text.splitlines() if ln.strip()])
            if not doc or not all(isinstance(r, dict) for r in doc):
                raise ValueError("send a JSON list of ground-truth records, or one record per line")
            path = ground_truth.write(doc, self.ground_truth_dir / endpoint)
        except (UnicodeDecodeError, orjson.JSONDecodeError, ValueError) as err:
            return json_response({"error": f"bad ground truth: {str(err)[:300]}"}, 400)
        return json_response({"endpoint": endpoint, "written": len(doc), "file": str(path)})

    # --- V2 gRPC. No type hints on purpose: protobuf types would make the class unpicklable for Ray.

    async def ServerLive(self, request, grpc_context=None):
        from serving.protos import inference_pb2 as pb

        return await _grpc(self.plane, grpc_context, pb.ServerLiveResponse(), lambda: pb.ServerLiveResponse(live=True))

    async def ServerReady(self, request, grpc_context=None):
        from serving.protos import inference_pb2 as pb

        async def ready():
            return pb.ServerReadyResponse(ready=await self.plane.ready())
        return await _grpc(self.plane, grpc_context, pb.ServerReadyResponse(), ready)

    async def ServerMetadata(self, request, grpc_context=None):
        from serving.protos import inference_pb2 as pb

        return await _grpc(self.plane, grpc_context, pb.ServerMetadataResponse(), lambda: pb.ServerMetadataResponse(
            name=v2rest.SERVER_NAME, version=v2rest.SERVER_VERSION, extensions=v2rest.EXTENSIONS))

    async def ModelReady(self, request, grpc_context=None):
        from serving.protos import inference_pb2 as pb

        async def ready():
            return pb.ModelReadyResponse(ready=await self.plane.model_ready(request.name, request.version or None))
        return await _grpc(self.plane, grpc_context, pb.ModelReadyResponse(), ready)

    async def ModelMetadata(self, request, grpc_context=None):
        from serving.protos import inference_pb2 as pb

        async def metadata():
            meta = await self.plane.model_metadata(request.name, request.version or None)
            tm = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(name=meta["name"], versions=meta["versions"], platform=meta["platform"],
                                            inputs=[tm(**t) for t in meta["inputs"]],
                                            outputs=[tm(**t) for t in meta["outputs"]])
        return await _grpc(self.plane, grpc_context, pb.ModelMetadataResponse(), metadata)

    async def ModelInfer(self, request, grpc_context=None):
        return await grpc_adapter.model_infer(self.plane, request, grpc_context)


def _sigv4(server: ServerSpec) -> SigV4Verifier | None:
    s = server.sigv4
    return None if s is None else SigV4Verifier(s.region, s.service, s.access_keys)


async def _grpc(plane: DataPlane, context, empty, answer):
    """An authenticated non-inference RPC: its answer, or the error as a gRPC status."""
    try:
        plane.authorize(grpc_adapter.credentials(context))
        result = answer()
        return await result if hasattr(result, "__await__") else result
    except FerryError as err:
        return grpc_adapter.fail(context, err.error, empty)
    except Exception:  # noqa: BLE001 - a bug: a status naming an incident id, the traceback in the log
        return grpc_adapter.fail(context, internal_error(log, "a gRPC call"), empty)


def variant_runner(endpoint: str, v: VariantSpec, models: dict[str, ModelSpec], remote: dict[str, Remote],
                   features: FeatureStoreConfig | None = None, gateway_replicas: int = 1):
    """A production variant's runner: its pipeline, its model in this replica, or a handle to its deployment
    (`remote` maps deployment names to their Remote)."""
    if v.pipeline:
        return PipelineRunner.build(endpoint, v, models, remote, features)
    target = remote.get(f"{endpoint}.{v.name}")
    runner = (RemoteVariant(target.handle, v.name, v.batching, target.scales_to_zero,
                            max_in_flight=max(4, 2 * (v.autoscaling.max_replicas if v.autoscaling else v.replicas)),
                            gather=v.serverless is None and v.max_queued_requests == -1)
              if target else ModelRunner(models[v.model], v.name, v.batching))
    if v.serverless is not None:
        runner = ServerlessVariant(runner, endpoint, v.serverless, serverless.gateway_share(v.serverless,
                                                                                            gateway_replicas))
    return runner


def _endpoint(spec: EndpointSpec, models: dict[str, ModelSpec], remote: dict[str, Remote],
              kafka_bootstrap: str | None, features: FeatureStoreConfig | None = None,
              metrics: ServingMetrics | None = None, gateway_replicas: int = 1) -> Endpoint:
    """An endpoint's runners, capture and shadows; `metrics` counts the shadows' comparisons (the gateway's)."""
    runners = {v.name: variant_runner(spec.name, v, models, remote, features, gateway_replicas)
               for v in spec.variants}
    capture = None
    if spec.data_capture.enabled:
        capture = EndpointCapture(spec.data_capture, make_sink(spec.data_capture, spec.name, kafka_bootstrap))
    metrics = metrics or ServingMetrics()
    shadows = []
    for s in spec.shadow_variants:  # in the gateway, or on its own deployment (serving/deploy.py decides)
        target = remote.get(f"{spec.name}.{s.name}")
        runner = (RemoteVariant(target.handle, s.name, scales_to_zero=target.scales_to_zero) if target
                  else ModelRunner(models[s.model], s.name))
        shadows.append(Shadow(spec.name, s, runner, metrics.shadow(spec.name, s.name), capture,
                              thread=target is None and s.thread))
    return Endpoint(spec.name, runners, {v.name: v.initial_weight for v in spec.variants}, capture, shadows)


def _feature_api(features: FeatureStoreConfig):
    """The feature store's REST API (SageMaker featurestore-runtime + Feast routes) as an ASGI app, on this
    process's feature store (the one the lookup steps read)."""
    from fastapi import FastAPI

    from featurestore.api import make_router
    from serving.steps import feature_store

    app = FastAPI(title="Ferry feature store")
    app.include_router(make_router(feature_store(features)))
    return app


async def _call_asgi(app, request: Request, limit: int) -> Response:
    """Run an ASGI app on this request inside the gateway (no extra hop) and return its response; the body is
    read first, refused with 413 past `limit` bytes as the inference routes refuse theirs."""
    body = [{"type": "http.request", "body": await read_body(request, headers_of(request), limit),
             "more_body": False}]
    start: dict = {}
    chunks: list[bytes] = []

    async def receive():
        return body.pop() if body else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app({**request.scope, "root_path": ""}, receive, send)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])
               if k.lower() != b"content-length"}
    return Response(b"".join(chunks), status_code=start.get("status", 500), headers=headers)
