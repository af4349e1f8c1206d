"""What the HTTP adapters share: header lookup, a size-bounded body reader, JSON responses."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from core.errors import FerryError, bad_request, too_large


def headers_of(request) -> dict[bytes, bytes]:
    """The request headers as a dict of lowercase byte strings (one pass; the last of repeated headers wins)."""
    return dict(request.scope["headers"])


def header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


async def read_body(request, headers: dict[bytes, bytes], limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (a chunked body is never read whole)."""
    declared = headers.get(b"content-length")
    if declared is not None:
        if not declared.isdigit():
            raise FerryError(bad_request("Content-Length is not a number"))
        if int(declared) > limit:
            raise FerryError(too_large(f"the body ({int(declared)} bytes) is over the {limit}-byte limit"))
    chunks, size, more = [], 0, True
    receive = request.receive
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise FerryError(bad_request("the client disconnected before sending the whole body"))
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise FerryError(too_large(f"the body is over the {limit}-byte limit"))
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def authorized(plane, request: Request) -> Request:
    """Authorize a request to a route that is not an inference (`plane.authorize`, raising 401/403). A SigV4-signed
    request has its body read (under the payload limit) to check the signature; the request returned replays
    that body to the route."""
    headers = headers_of(request)
    signed = plane.authorize(header(headers, b"authorization"), request.scope)
    if signed is None:
        return request
    body = await read_body(request, headers, plane.max_payload_bytes)
    signed.verify(body)
    receive, replayed = request.receive, False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()  # after the body: the client's disconnect, as the route would see it
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, replay)


class RawResponse(Response):
    """A starlette Response from header bytes made once (the inference routes' headers repeat per variant and
    type): no per-request header assembly. `raw_headers` must not hold content-length; it is added here."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]], status_code: int = 200):
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [*raw_headers, (b"content-length", b"%d" % len(body))]


def json_response(doc, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")
