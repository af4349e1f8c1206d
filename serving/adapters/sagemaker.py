"""SageMaker runtime routes: `POST /endpoints/{name}/invocations` (and the container's `/invocations`).

Content-Type picks the codec (text/csv, application/json, application/x-npy), Accept the response's;
`X-Amzn-SageMaker-Target-Variant`, `-Inference-Id` and `-Custom-Attributes` as SageMaker defines them.
Errors are SageMaker's shape: `x-amzn-ErrorType` and a JSON body with `Message`.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

from core import payloads
from core.errors import FerryError, InferenceError, bad_request
from serving.adapters.http import RawResponse, read_body
from serving.dataplane import DataPlane, Exchange, ModelResult, Payload

CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"
TARGET_VARIANT = b"x-amzn-sagemaker-target-variant"
INFERENCE_ID = b"x-amzn-sagemaker-inference-id"


class SageMakerExchange(Exchange):
    protocol = "sagemaker"
    captured_now = True

    def __init__(self, endpoint: str, request):
        super().__init__(endpoint)
        self.request = request
        self.http_scope = scope = request.scope
        self.headers = h = dict(scope["headers"])  # headers_of, and header() below, inlined: made per request
        credentials, target, inference_id, content_type = (h.get(b"authorization"), h.get(TARGET_VARIANT),
                                                           h.get(INFERENCE_ID), h.get(b"content-type"))
        self.credentials = None if credentials is None else credentials.decode("latin-1")
        self.target_variant = None if target is None else target.decode("latin-1")
        self.inference_id = None if inference_id is None else inference_id.decode("latin-1")
        self.content_type = None if content_type is None else content_type.decode("latin-1")
        self.body = b""
        self.accept = ""
        self.response_codec = None
        self.response = b""

    async def read(self, limit: int) -> None:
        self.body = await read_body(self.request, self.headers, limit)

    def decode(self) -> Payload:
        if self.inference_id is not None and not 1 <= len(self.inference_id) <= 64:
            raise FerryError(bad_request("X-Amzn-SageMaker-Inference-Id must be 1-64 characters"))
        accept = self.headers.get(b"accept")
        types = _TYPES.get((self.content_type, accept))
        if types is None:
            types = _types(self.content_type, accept)
        codec, self.accept, self.response_codec = types
        decoded = codec.decode(self.body)
        return Payload(named=decoded) if isinstance(decoded, dict) else Payload(matrix=decoded)

    def encode(self, result: ModelResult) -> None:
        self.response = self.response_codec.encode(result.outputs)

    def captured(self) -> tuple[bytes, str, bytes, str]:
        return self.body, self.content_type or "", self.response, self.accept


_TYPES: dict[tuple, tuple] = {}  # (Content-Type, Accept) -> (request codec, response type, its codec)
_HEADERS: dict[tuple[str, str], list] = {}  # (variant, response type) -> the response's raw headers
_CACHED = 256  # distinct header values remembered (clients send few); past it, worked out per request


def _types(content_type: str | None, accept: bytes | None) -> tuple:
    """The request's codec, the response type and its codec, or FerryError (415, 406)."""
    codec = payloads.codec_for(content_type)
    if codec is None or codec.media_type not in payloads.RESPONSE_TYPES:
        raise FerryError(payloads.unsupported(content_type))
    answer = payloads.choose_accept(accept.decode("latin-1") if accept is not None else None, content_type)
    types = (codec, answer, payloads.CODECS[answer])
    if len(_TYPES) < _CACHED:
        _TYPES[(content_type, accept)] = types
    return types


def _raw_headers(variant: str, media_type: str) -> list[tuple[bytes, bytes]]:
    """The headers starlette writes for Response(media_type=..., headers={invoked variant}), made once (the caller
    looks in _HEADERS first)."""
    raw = Response(b"", media_type=media_type, headers={"x-amzn-invoked-production-variant": variant}).raw_headers
    raw = [h for h in raw if h[0] != b"content-length"]
    if len(_HEADERS) < _CACHED:
        _HEADERS[(variant, media_type)] = raw
    return raw


async def invoke(plane: DataPlane, request, endpoint: str) -> Response:
    ex = SageMakerExchange(endpoint, request)
    try:
        result = await plane.infer(ex)
    except FerryError as err:
        return error_response(err.error)
    raw = _HEADERS.get((result.variant, ex.accept)) or _raw_headers(result.variant, ex.accept)
    attrs = ex.headers.get(CUSTOM_ATTRIBUTES)
    if attrs is not None:
        raw = [*raw, (b"x-amzn-sagemaker-custom-attributes", attrs)]
    return RawResponse(ex.response, raw)


def error_response(error: InferenceError) -> Response:
    """SageMaker's error shape: x-amzn-ErrorType header and a JSON body with Message (404s are 400s); a SigV4
    refusal (403) has the shape of AWS's authentication errors, `__type` and `message`."""
    status = 400 if error.status == 404 else error.status
    doc = {"ErrorCode": error.error_type, "Message": error.message}
    if status == 403:
        doc = {"__type": error.error_type, "message": error.message}
    if error.error_type == "ModelError":
        doc.update(OriginalStatusCode=500, OriginalMessage=error.message)
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json",
                    headers={"x-amzn-ErrorType": f"{error.error_type}:"})
