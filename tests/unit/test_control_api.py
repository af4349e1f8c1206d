"""The control API's authentication (issue 13): with a control token every /control route needs it as a bearer
token, and a server bound beyond loopback without one is refused."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from serving.adapters.control import ControlAPI
from serving.spec import ServerSpec
from tests.unit.test_dataplane import http_request


class _Method:
    def __init__(self, result, calls: list):
        self.result, self.calls = result, calls

    async def remote(self, *args):
        self.calls.append(args)
        return self.result


class FakeControl:
    """The Control deployment's handle as the adapter uses it: records the calls that got through."""

    def __init__(self):
        self.calls: list = []
        self.traffic = _Method({"version": 1, "endpoints": {}}, self.calls)
        self.set_weights = _Method({"traffic": {"version": 2}}, self.calls)


def _call(api: ControlAPI, parts: list[str], method: str, token: str | None = None, body: bytes = b""):
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return asyncio.run(api.handle(http_request("/control/" + "/".join(parts), body, headers), parts, method))


ROUTES = [(["traffic"], "GET", b""), (["endpoints", "ep", "weights"], "PUT", orjson.dumps({"weights": {"A": 1}}))]


@pytest.mark.parametrize("parts, method, body", ROUTES)
def test_with_a_control_token_a_change_needs_it(parts, method, body):
    control = FakeControl()
    api = ControlAPI(control, "s3cret")
    for token in (None, "wrong", "s3cret-and-more", ""):
        r = _call(api, parts, method, token, body)
        assert r.status_code == 401 and "bearer token" in orjson.loads(r.body)["error"]
    assert control.calls == []  # nothing reached the control plane
    assert _call(api, parts, method, "s3cret", body).status_code == 200 and len(control.calls) == 1


def test_without_a_token_on_loopback_the_api_is_open():
    control = FakeControl()
    assert _call(ControlAPI(control, None), ["traffic"], "GET").status_code == 200


@pytest.mark.parametrize("host, tokens, refused", [
    ("127.0.0.1", {}, False), ("localhost", {}, False), ("0.0.0.0", {}, True), ("10.1.2.3", {}, True),
    ("0.0.0.0", {"control_token": "c"}, False), ("0.0.0.0", {"auth_token": "a"}, False)])
def test_a_server_beyond_loopback_needs_a_control_token(host, tokens, refused):
    server = ServerSpec(host=host, **tokens)
    if refused:
        with pytest.raises(ValueError, match="exposes the control API beyond loopback"):
            server.check_control_exposure()
    else:
        server.check_control_exposure()
        assert server.control_secret == (tokens.get("control_token") or tokens.get("auth_token"))
