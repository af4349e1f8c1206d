"""The gateway: SageMaker runtime routes, KServe V2 REST, /ping and /metrics over HTTP, and the V2
`inference.GRPCInferenceService` RPCs through Ray Serve's gRPC proxy.

A thin protocol adapter: it checks size and auth, decodes the body into a `Payload`, hands it to the
endpoint's router (which calls a variant's model deployment through its DeploymentHandle), and encodes
the answer, or the error in the protocol's shape.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from pathlib import Path

from ray import serve
from ray.serve.exceptions import BackPressureError
from starlette.requests import Request
from starlette.responses import Response

from serving import codecs, grpc_codec, replica_metrics, v2
from serving.dataplane import Payload, RoutedRequest, RoutedResponse
from core.errors import (FerryError, InferenceError, bad_request, not_found, throttled, too_large, unauthorized,
                            unavailable)
from serving.metrics import ServingMetrics
from serving.model_server import RemoteVariant, VariantRunner
from serving.router import EndpointRouter

log = logging.getLogger(__name__)

SERVER_NAME = "ferry"
SERVER_VERSION = "0.1.0"
V2_EXTENSIONS = ["binary_tensor_data"]
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
FEATURE_ROUTES = {"FeatureGroup", "BatchGetRecord", "get-online-features", "feature-groups"}


@serve.deployment
class Gateway:
    """Ingress of the `ferry` application, at route prefix /; holds every endpoint's router."""

    def __init__(self, endpoints: list[dict], variants: dict[str, dict], max_payload_bytes: int,
                 auth_token: str | None = None, kafka_bootstrap: str | None = None,
                 ground_truth_dir: str = "./ground-truth", monitor=None, features: dict | None = None):
        self.endpoints = [ep["name"] for ep in endpoints]
        self.ground_truth_dir = Path(ground_truth_dir)
        self.monitor = monitor  # the MonitorRunner's handle when the deploy file has monitoring schedules
        self.features = _feature_api(features) if features else None  # featurestore-runtime routes, in-process
        self.default = self.endpoints[0] if endpoints else None
        self.max_payload = max_payload_bytes
        self.token = auth_token
        self.routers = {ep["name"]: EndpointRouter(ep, {name: _variant(v) for name, v in variants[ep["name"]].items()},
                                                   kafka_bootstrap) for ep in endpoints}
        self.metrics = ServingMetrics()

    def __del__(self):
        """Ray Serve calls this on replica shutdown: flush captured records."""
        for router in getattr(self, "routers", {}).values():
            router.close()

    async def __call__(self, request: Request) -> Response:
        path = request.scope["path"].removeprefix(request.scope.get("root_path", ""))
        parts = [p for p in path.split("/") if p]
        method = request.method
        try:
            if parts == ["ping"] and method == "GET":
                ok = self.default is not None and await self.routers[self.default].ready()
                return Response(status_code=200 if ok else 503)
            if parts == ["metrics"] and method == "GET":
                body = self.metrics.exposition()
                body += await asyncio.to_thread(replica_metrics.exposition, serve.get_replica_context().app_name)
                if self.monitor is not None:
                    body += await self.monitor.metrics.remote()
                return Response(body, media_type="text/plain; version=0.0.4")
            self._authorize(request)
            if parts and parts[0] in FEATURE_ROUTES and self.features is not None:
                return await _call_asgi(self.features, request)
            if parts == ["ground-truth"] and method == "POST":
                return await self._ground_truth(request)
            if parts == ["monitoring", "executions"] and method == "GET":
                q = request.query_params
                found = [] if self.monitor is None else await self.monitor.executions.remote(
                    q.get("endpoint"), q.get("schedule"))
                return _json({"executions": found})
            if parts == ["invocations"] and method == "POST":
                if self.default is None:
                    raise FerryError(bad_request("no endpoint is deployed"))
                return await self._sagemaker(request, self.default)
            if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations" and method == "POST":
                return await self._sagemaker(request, parts[1])
            if parts and parts[0] == "v2":
                return await self._v2(request, parts[1:], method)
        except FerryError as err:
            is_v2 = bool(parts) and parts[0] == "v2"
            return v2_error(err.error) if is_v2 else sagemaker_error(err.error)
        return Response(json.dumps({"error": f"no route {method} {request.url.path}"}), status_code=404,
                        media_type="application/json")

    async def _ground_truth(self, request: Request) -> Response:
        """SageMaker ground-truth records (a JSON list or JSON Lines) for an endpoint's monitors."""
        from monitor import ground_truth

        endpoint = request.query_params.get("endpoint") or self.default
        if endpoint not in self.routers:
            return _json({"error": f"unknown endpoint {endpoint!r}; endpoints: {self.endpoints}"}, 404)
        body = await self._body(request)
        try:
            text = body.decode("utf-8").strip()
            doc = json.loads(text) if text.startswith("[") else [json.loads(ln) for ln in text.splitlines() if ln.strip()]
            if not doc or not all(isinstance(r, dict) for r in doc):
                raise ValueError("send a JSON list of ground-truth records, or one record per line")
            path = ground_truth.write(doc, self.ground_truth_dir / endpoint)
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as err:
            return _json({"error": f"bad ground truth: {err}"}, 400)
        return _json({"endpoint": endpoint, "written": len(doc), "file": str(path)})

    def _authorize(self, request: Request) -> None:
        if not self.token:
            return
        got = request.headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), f"Bearer {self.token}".encode()):
            raise FerryError(unauthorized("missing or wrong bearer token"))

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_payload:
            raise FerryError(too_large(f"the body ({declared} bytes) is over the {self.max_payload}-byte limit"))
        body = await request.body()
        if len(body) > self.max_payload:
            raise FerryError(too_large(f"the body ({len(body)} bytes) is over the {self.max_payload}-byte limit"))
        return body

    def _router(self, endpoint: str, sagemaker: bool):
        router = self.routers.get(endpoint)
        if router is None:
            msg = f"Endpoint {endpoint} not found." if sagemaker else f"model {endpoint!r} not found; models: {self.endpoints}"
            raise FerryError(bad_request(msg) if sagemaker else not_found(msg))
        return router

    async def _sagemaker(self, request: Request, endpoint: str) -> Response:
        start = time.perf_counter()
        router = self._router(endpoint, sagemaker=True)
        ct = request.headers.get("content-type")
        try:
            body = await self._body(request)
            accept = codecs.choose_accept(request.headers.get("accept"), ct)
            decoded = codecs.decode(body, ct)
        except FerryError as err:
            self.metrics.observe(endpoint, "", "sagemaker", err.error.status, time.perf_counter() - start,
                                 err.error.error_type)
            raise
        payload = Payload(named=decoded) if isinstance(decoded, dict) else Payload(matrix=decoded)
        inference_id = request.headers.get("x-amzn-sagemaker-inference-id")
        if inference_id is not None and not 1 <= len(inference_id) <= 64:
            raise FerryError(bad_request("X-Amzn-SageMaker-Inference-Id must be 1-64 characters"))
        req = RoutedRequest(payload, target_variant=request.headers.get("x-amzn-sagemaker-target-variant"),
                            inference_id=inference_id, content_type=codecs.media_type(ct), body=body)
        resp = await self._call(router, req, endpoint, "sagemaker", start)
        headers = {"x-amzn-invoked-production-variant": resp.variant}
        if CUSTOM_ATTRIBUTES in request.headers:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = request.headers[CUSTOM_ATTRIBUTES]
        out = codecs.encode(resp.outputs, accept)
        if router.sampled():
            router.capture(req, resp, out, accept)
        return Response(out, media_type=accept, headers=headers)

    async def _call(self, router, req: RoutedRequest, endpoint: str, protocol: str, start: float) -> RoutedResponse:
        try:
            resp: RoutedResponse = await router.infer(req)
        except Exception as err:  # backpressure, replica died, ...: retryable, never the client's fault
            log.warning("endpoint %s unavailable: %s", endpoint, type(err).__name__)
            if isinstance(err, BackPressureError):
                error = throttled(f"endpoint {endpoint} is at its queue limit; retry later")
            else:
                error = unavailable(f"endpoint {endpoint} is unavailable: {type(err).__name__}")
            self.metrics.observe(endpoint, "", protocol, error.status, time.perf_counter() - start, error.error_type)
            raise FerryError(error) from None
        err = resp.error
        self.metrics.observe(endpoint, resp.variant, protocol, err.status if err else 200, time.perf_counter() - start,
                             err.error_type if err else None, resp.batch_size, resp.model_seconds)
        if err:
            raise FerryError(err)
        return resp

    async def _v2(self, request: Request, parts: list[str], method: str) -> Response:
        if method == "GET" and parts == []:
            return _json({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": V2_EXTENSIONS})
        if method == "GET" and parts == ["health", "live"]:
            return _json({"live": True})
        if method == "GET" and parts == ["health", "ready"]:
            ready = all([await r.ready() for r in self.routers.values()])
            return _json({"ready": ready}, 200 if ready else 503)
        if len(parts) < 2 or parts[0] != "models":
            raise FerryError(not_found(f"no V2 route {method} {request.url.path}"))
        name, rest, version = parts[1], parts[2:], None
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        router = self._router(name, sagemaker=False)
        if method == "GET" and rest == []:
            meta = await router.metadata(version)
            if meta is None:
                raise FerryError(not_found(f"model {name!r} has no version {version!r}"))
            return _json({"name": name, "versions": meta["versions"], "platform": "onnx_onnxv1",
                          "inputs": meta["inputs"], "outputs": meta["outputs"]})
        if method == "GET" and rest == ["ready"]:
            ready = await router.ready(version)
            return _json({"name": name, "ready": ready}, 200 if ready else 503)
        if method == "POST" and rest == ["infer"]:
            return await self._v2_infer(request, router, name, version)
        raise FerryError(not_found(f"no V2 route {method} {request.url.path}"))

    # --- V2 gRPC: method names are the RPC names (Ray Serve's gRPC proxy dispatches on them). Protobuf
    # classes are imported here, in the replica, never at module import: no type hints on purpose.

    async def ServerLive(self, request):
        from serving.protos import inference_pb2 as pb

        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request):
        from serving.protos import inference_pb2 as pb

        return pb.ServerReadyResponse(ready=all([await r.ready() for r in self.routers.values()]))

    async def ServerMetadata(self, request):
        from serving.protos import inference_pb2 as pb

        return pb.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=V2_EXTENSIONS)

    async def ModelReady(self, request, grpc_context=None):
        from serving.protos import inference_pb2 as pb

        try:
            router = self._router(request.name, sagemaker=False)
        except FerryError as err:
            return _grpc_fail(grpc_context, err.error, pb.ModelReadyResponse())
        return pb.ModelReadyResponse(ready=await router.ready(request.version or None))

    async def ModelMetadata(self, request, grpc_context=None):
        from serving.protos import inference_pb2 as pb

        try:
            meta = await self._router(request.name, sagemaker=False).metadata(request.version or None)
            if meta is None:
                raise FerryError(not_found(f"model {request.name!r} has no version {request.version!r}"))
        except FerryError as err:
            return _grpc_fail(grpc_context, err.error, pb.ModelMetadataResponse())
        tm = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=request.name, versions=meta["versions"], platform="onnx_onnxv1",
            inputs=[tm(**t) for t in meta["inputs"]], outputs=[tm(**t) for t in meta["outputs"]])

    async def ModelInfer(self, request, grpc_context=None):
        from serving.protos import inference_pb2 as pb

        start = time.perf_counter()
        try:
            router = self._router(request.model_name, sagemaker=False)
            req = RoutedRequest(Payload(named=grpc_codec.request_inputs(request), strict_dtype=True),
                                output_names=[o.name for o in request.outputs] or None,
                                target_variant=request.model_version or None, inference_id=request.id or None,
                                content_type="application/grpc")
            resp = await self._call(router, req, request.model_name, "grpc", start)
        except FerryError as err:
            return _grpc_fail(grpc_context, err.error, pb.ModelInferResponse())
        out = pb.ModelInferResponse(model_name=request.model_name, model_version=resp.variant, id=request.id)
        if router.sampled():  # captured as the V2 JSON of the tensors
            req.body, req.content_type = v2.as_json(req.payload.named), "application/json"
            router.capture(req, resp, v2.as_json(resp.outputs), "application/json")
        return grpc_codec.fill_response(out, resp.outputs, raw=bool(request.raw_input_contents))

    async def _v2_infer(self, request: Request, router, name: str, version: str | None) -> Response:
        start = time.perf_counter()
        body = await self._body(request)
        parsed = v2.parse_request(body, request.headers.get("inference-header-content-length"))
        binary = "inference-header-content-length" in request.headers
        req = RoutedRequest(Payload(named=parsed.inputs, strict_dtype=True), output_names=parsed.outputs,
                            target_variant=version, inference_id=parsed.id,
                            content_type="application/octet-stream" if binary else "application/json", body=body)
        resp = await self._call(router, req, name, "v2", start)
        out, headers = v2.encode_response(name, resp.variant, parsed, resp.outputs)
        if router.sampled():
            router.capture(req, resp, out, headers["content-type"])
        return Response(out, headers=headers)


def _variant(target: dict):
    """A variant deployment (its bound ModelServer arrives as a DeploymentHandle), or an in-process runner."""
    if "remote" in target:
        return RemoteVariant(target["remote"], target["batching"], target["scales_to_zero"])
    return VariantRunner(target["model"], target["variant"], target["batching"])


def _feature_api(features: dict):
    """The feature store's REST API (SageMaker featurestore-runtime + Feast routes) as an ASGI app."""
    from fastapi import FastAPI

    from featurestore.api import make_router
    from featurestore.spec import FeatureGroupSpec, FeatureStoreSettings
    from featurestore.store import FeatureStore

    store = FeatureStore(FeatureStoreSettings(**features["settings"]),
                         [FeatureGroupSpec.model_validate(g) for g in features["groups"]])
    app = FastAPI(title="Ferry feature store")
    app.include_router(make_router(store))
    return app


async def _call_asgi(app, request: Request) -> Response:
    """Run an ASGI app on this request inside the gateway (no extra hop) and return its response."""
    start: dict = {}
    chunks: list[bytes] = []

    async def send(message):
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app({**request.scope, "root_path": ""}, request.receive, send)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])
               if k.lower() != b"content-length"}
    return Response(b"".join(chunks), status_code=start.get("status", 500), headers=headers)


def _grpc_fail(context, error: InferenceError, empty):
    """Set the gRPC status of a failed call (Ray Serve sends it instead of the empty message)."""
    import grpc

    if context is not None:
        context.set_code(getattr(grpc.StatusCode, error.grpc_code))
        context.set_details(error.message)
    return empty


def _json(doc: dict, status: int = 200) -> Response:
    return Response(json.dumps(doc), status_code=status, media_type="application/json")


def v2_error(error: InferenceError) -> Response:
    return _json({"error": error.message}, error.status)


def sagemaker_error(error: InferenceError) -> Response:
    """SageMaker's error shape: x-amzn-ErrorType header and a JSON body with Message."""
    status = 400 if error.status == 404 else error.status
    doc = {"ErrorCode": error.error_type, "Message": error.message}
    if error.error_type == "ModelError":
        doc.update(OriginalStatusCode=500, OriginalMessage=error.message)
    return Response(json.dumps(doc), status_code=status, media_type="application/json",
                    headers={"x-amzn-ErrorType": f"{error.error_type}:"})
