"""The standalone server's gate (`ferry features serve`): bearer token and payload limit, before any route runs.

The body is read in chunks and counted: a request over the limit (declared or chunked) gets 413 as soon as the
count passes it, and the rest of the body is never read. Within the limit the body is buffered (at most the limit)
and handed to the app. /ping and /metrics need no token (probes and scrapers), as on the Ferry server.
"""

from __future__ import annotations

import hmac

import orjson

OPEN_PATHS = frozenset({"/ping", "/metrics"})


class Guard:
    def __init__(self, app, max_body_bytes: int, token: str | None = None):
        self.app, self.max_body_bytes = app, max_body_bytes
        self._expected = None if not token else f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self._expected is not None and scope["path"] not in OPEN_PATHS and not hmac.compare_digest(
                headers.get(b"authorization", b""), self._expected):
            return await _reply(send, 401, "UnauthorizedOperation", "missing or wrong bearer token")
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return await _reply(send, 413, "ValidationError",
                                f"the body ({int(declared)} bytes) is over the {self.max_body_bytes}-byte limit")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:  # stop reading here: the rest of a chunked body never comes in
                return await _reply(send, 413, "ValidationError",
                                    f"the body is over the {self.max_body_bytes}-byte limit")
            chunks.append(body)
            if not message.get("more_body"):
                break
        buffered = {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        async def replay():
            nonlocal buffered
            if buffered is None:
                return await receive()
            message, buffered = buffered, None
            return message

        return await self.app(scope, replay, send)


async def _reply(send, status: int, kind: str, message: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": orjson.dumps({"__type": kind, "message": message})})
