"""Payload codecs: one per content type, shared by the server that decodes and encodes requests and the
monitor that reads captured payloads back into tables.

    codec = codec_for("text/csv")          # None for a type Ferry does not speak
    rows = codec.decode(body)              # request body -> a row matrix or named tensors
    body = codec.encode(outputs)           # model outputs -> response body
    table = codec.read(body, OUTPUT)       # a captured body (either side) -> a Table for the monitor

Media types: text/csv, application/json (SageMaker JSON and KServe V2 JSON, told apart by shape),
application/x-npy, and application/vnd.sagemaker-triton.binary+json (V2 JSON with the binary tensor
extension, as SageMaker's Triton containers name it; how binary V2 and gRPC calls are captured).
"""

from __future__ import annotations

from core.errors import FerryError, InferenceError, not_acceptable, quote, unsupported_media
from core.payloads.base import INPUT, OUTPUT, CaptureCodec, Codec, Table, media_type
from core.payloads.csv import CSV
from core.payloads.json import JSON
from core.payloads.npy import NPY
from core.payloads.v2 import V2_BINARY

CODECS: dict[str, CaptureCodec] = {c.media_type: c for c in (CSV, JSON, NPY, V2_BINARY)}
RESPONSE_TYPES = (CSV.media_type, JSON.media_type, NPY.media_type)  # what the SageMaker routes answer in

__all__ = ["CODECS", "CSV", "INPUT", "JSON", "NPY", "OUTPUT", "V2_BINARY", "CaptureCodec", "Codec", "Table", "choose_accept",
           "codec_for", "media_type", "unsupported"]


def codec_for(content_type: str | None) -> CaptureCodec | None:
    """The codec of a Content-Type header value (parameters such as charset ignored)."""
    return CODECS.get(media_type(content_type))


def unsupported(content_type: str | None) -> InferenceError:
    """The 415 for a request body whose type the SageMaker routes do not take."""
    return unsupported_media(f"unsupported Content-Type {quote(content_type)}; use one of "
                             f"{', '.join(RESPONSE_TYPES)}")


def choose_accept(accept: str | None, content_type: str | None) -> str:
    """The SageMaker response type: the first supported type in Accept, else the request's own type."""
    if not accept:
        req = media_type(content_type)
        return req if req in RESPONSE_TYPES else JSON.media_type
    wanted = [media_type(a) for a in accept.split(",")]
    for w in wanted:
        if w in RESPONSE_TYPES:
            return w
    if any(w in ("*/*", "") for w in wanted):
        req = media_type(content_type)
        return req if req in RESPONSE_TYPES else JSON.media_type
    raise FerryError(not_acceptable(f"unsupported Accept {quote(accept)}; use one of {', '.join(RESPONSE_TYPES)}"))
