"""The control API over HTTP: live traffic changes, forwarded to the `control` deployment.

    GET  /control/traffic                          every endpoint's live weights (and the state's version)
    PUT  /control/endpoints/{name}/weights         {"weights": {"variant": weight, ...}}
    GET  /control/endpoints/{name}/shadows         each shadow variant against production (all replicas)
    POST /control/endpoints/{name}/rollouts        {"green": {"<variant>": {"model": {...}, "weight": 1}},
                                                    "strategy": "canary", "canary_percent": 10, ...}; a green
                                                    of any shape (a pipeline, its own deployment):
                                                    {"variant": {<VariantSpec>}, "models": {name: {...}}}
                                                    (serving.control.state.RolloutRequest)
    GET  /control/endpoints/{name}/rollout         the endpoint's current (or last) rollout

Authenticated with server.control_token (default: auth_token); without one, the server refuses to bind
beyond loopback. Errors are `{"error": "..."}` with the status.
"""

from __future__ import annotations

import hmac

import orjson
from pydantic import ValidationError
from starlette.responses import Response

from core.errors import FerryError, InferenceError, bad_request, not_found, quote, unauthorized, unavailable
from serving.adapters.http import header, headers_of, json_response, read_body
from serving.control.state import RolloutRequest

MAX_BODY = 64 * 1024


class ControlAPI:
    def __init__(self, control, token: str | None):
        self.control = control  # the Control deployment's handle (None: no control plane in this application)
        self._token = f"Bearer {token}".encode() if token else None

    async def handle(self, request, parts: list[str], method: str) -> Response:
        """`parts` is the path after /control."""
        try:
            credentials = header(headers_of(request), b"authorization")
            if self._token is not None and not hmac.compare_digest((credentials or "").encode(), self._token):
                raise FerryError(unauthorized("missing or wrong bearer token for the control API"))
            if self.control is None:
                raise FerryError(unavailable("this application has no control plane"))
            if parts == ["traffic"] and method == "GET":
                return json_response(await self.control.traffic.remote())
            if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "weights" and method == "PUT":
                weights = _weights(await read_body(request, headers_of(request), MAX_BODY))
                return _answer(await self.control.set_weights.remote(parts[1], weights))
            if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "shadows" and method == "GET":
                return json_response(await self.control.shadow_report.remote(parts[1]))
            if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "rollout" and method == "GET":
                return json_response(await self.control.rollout.remote(parts[1]))
            if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "rollouts" and method == "POST":
                body = _rollout(await read_body(request, headers_of(request), MAX_BODY))
                result = await self.control.start_rollout.remote(parts[1], body)
                if "error" in result:
                    return error_response(InferenceError(**result["error"]))
                return json_response(result["rollout"], 202)
            raise FerryError(not_found(f"no control route {method} {quote('/control/' + '/'.join(parts))}"))
        except FerryError as err:
            return error_response(err.error)


def _object(body: bytes) -> dict:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise FerryError(bad_request(f"the body is not valid JSON: {str(err)[:200]}")) from None
    if not isinstance(doc, dict):
        raise FerryError(bad_request("the body must be a JSON object"))
    return doc


def _rollout(body: bytes) -> RolloutRequest:
    """The rollout request, typed (a 400 names the field that is wrong)."""
    try:
        return RolloutRequest.model_validate(_object(body))
    except ValidationError as err:
        raise FerryError(bad_request(f"rollout request: {str(err)[:800]}")) from None


def _weights(body: bytes) -> dict:
    weights = _object(body).get("weights")
    if not isinstance(weights, dict) or not weights:
        raise FerryError(bad_request('send {"weights": {"<variant>": <weight>, ...}}'))
    return weights


def _answer(result: dict) -> Response:
    if "error" in result:
        return error_response(InferenceError(**result["error"]))
    return json_response(result["traffic"])


def error_response(error: InferenceError) -> Response:
    return json_response({"error": error.message}, error.status)
