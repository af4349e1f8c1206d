"""KServe V2 / Open Inference Protocol over HTTP: health, server and model metadata, model ready, infer
(JSON, or JSON plus binary tensor data). Errors are `{"error": "..."}` with the status."""

from __future__ import annotations

from starlette.responses import Response

from core.errors import FerryError, InferenceError, not_found, quote
from core.payloads import v2
from serving.adapters.http import authorized, header, headers_of, json_response, read_body
from serving.dataplane import DataPlane, Exchange, ModelResult, Payload

SERVER_NAME = "ferry"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data"]


class V2Exchange(Exchange):
    protocol = "v2"
    captured_now = True

    def __init__(self, endpoint: str, version: str | None, request):
        super().__init__(endpoint)
        self.request = request
        self.headers = h = headers_of(request)
        self.credentials = header(h, b"authorization")
        self.http_scope = request.scope
        self.target_variant = version
        self.header_length = header(h, b"inference-header-content-length")
        self.body = b""
        self.parsed: v2.V2Request | None = None
        self.response = b""
        self.response_headers: dict[str, str] = {}

    async def read(self, limit: int) -> None:
        self.body = await read_body(self.request, self.headers, limit)

    def decode(self) -> Payload:
        self.parsed = p = v2.parse_request(self.body, self.header_length)
        self.output_names = p.outputs
        self.inference_id = p.id
        return Payload(named=p.inputs, strict_dtype=True)

    def encode(self, result: ModelResult) -> None:
        self.response, self.response_headers = v2.encode_response(self.endpoint, result.variant, self.parsed,
                                                                   result.outputs)

    def captured(self) -> tuple[bytes, str, bytes, str]:
        in_type = ("application/json" if self.header_length is None
                   else f"{v2.BINARY_JSON};json-header-size={self.header_length}")
        out_len = self.response_headers.get("inference-header-content-length")
        out_type = "application/json" if out_len is None else f"{v2.BINARY_JSON};json-header-size={out_len}"
        return self.body, in_type, self.response, out_type


async def handle(plane: DataPlane, request, parts: list[str], method: str) -> Response:
    """Every /v2 route; `parts` is the path after /v2."""
    try:
        if method == "POST" and len(parts) >= 3 and parts[0] == "models" and parts[-1] == "infer":
            name, version = _model(parts[1:-1], request)
            ex = V2Exchange(name, version, request)
            await plane.infer(ex)
            return Response(ex.response, headers=ex.response_headers)
        request = await authorized(plane, request)
        if method != "GET":
            raise FerryError(not_found(f"no V2 route {method} {quote(request.url.path)}"))
        if parts == []:
            return json_response({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})
        if parts == ["health", "live"]:
            return json_response({"live": True})
        if parts == ["health", "ready"]:
            ready = await plane.ready()
            return json_response({"ready": ready}, 200 if ready else 503)
        if len(parts) >= 2 and parts[0] == "models":
            if parts[-1] == "ready":
                name, version = _model(parts[1:-1], request)
                ready = await plane.model_ready(name, version)
                return json_response({"name": name, "ready": ready}, 200 if ready else 503)
            name, version = _model(parts[1:], request)
            return json_response(await plane.model_metadata(name, version))
        raise FerryError(not_found(f"no V2 route {method} {quote(request.url.path)}"))
    except FerryError as err:
        return error_response(err.error)


def _model(parts: list[str], request) -> tuple[str, str | None]:
    """`{name}` or `{name}/versions/{version}`."""
    if len(parts) == 1:
        return parts[0], None
    if len(parts) == 3 and parts[1] == "versions":
        return parts[0], parts[2]
    raise FerryError(not_found(f"no V2 route {quote(request.url.path)}"))


def error_response(error: InferenceError) -> Response:
    return json_response({"error": error.message}, error.status)
