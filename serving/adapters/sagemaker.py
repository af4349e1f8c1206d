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
from serving.adapters.http import header, headers_of, read_body
from serving.dataplane import DataPlane, Exchange, ModelResult, Payload

CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"


class SageMakerExchange(Exchange):
    protocol = "sagemaker"

    def __init__(self, endpoint: str, request):
        super().__init__(endpoint)
        self.request = request
        self.headers = h = headers_of(request)
        self.credentials = header(h, b"authorization")
        self.http_scope = request.scope
        self.target_variant = header(h, b"x-amzn-sagemaker-target-variant")
        self.inference_id = header(h, b"x-amzn-sagemaker-inference-id")
        self.content_type = header(h, b"content-type")
        self.body = b""
        self.accept = ""
        self.response = b""

    async def read(self, limit: int) -> None:
        self.body = await read_body(self.request, self.headers, limit)

    def decode(self) -> Payload:
        if self.inference_id is not None and not 1 <= len(self.inference_id) <= 64:
            raise FerryError(bad_request("X-Amzn-SageMaker-Inference-Id must be 1-64 characters"))
        codec = payloads.codec_for(self.content_type)
        if codec is None or codec.media_type not in payloads.RESPONSE_TYPES:
            raise FerryError(payloads.unsupported(self.content_type))
        self.accept = payloads.choose_accept(header(self.headers, b"accept"), self.content_type)
        decoded = codec.decode(self.body)
        return Payload(named=decoded) if isinstance(decoded, dict) else Payload(matrix=decoded)

    def encode(self, result: ModelResult) -> None:
        self.response = payloads.CODECS[self.accept].encode(result.outputs)

    def captured(self) -> tuple[bytes, str, bytes, str]:
        return self.body, self.content_type or "", self.response, self.accept


async def invoke(plane: DataPlane, request, endpoint: str) -> Response:
    ex = SageMakerExchange(endpoint, request)
    try:
        result = await plane.infer(ex)
    except FerryError as err:
        return error_response(err.error)
    headers = {"x-amzn-invoked-production-variant": result.variant}
    attrs = ex.headers.get(CUSTOM_ATTRIBUTES)
    if attrs is not None:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = attrs.decode("latin-1")
    return Response(ex.response, media_type=ex.accept, headers=headers)


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
