"""The control API's authentication (issue 13): with a control token every /control route needs it as a bearer
token, and a server bound beyond loopback without one is refused."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from serving.adapters.control import ControlAPI
from serving.control.state import RolloutRequest
from serving.spec import BatchingSpec, ModelSpec, ServerSpec, VariantSpec
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
        self.start_rollout = _Method({"rollout": {"endpoint": "ep"}}, self.calls)


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


def test_a_rollout_request_crosses_to_the_control_plane_typed():
    """The body is validated once, where it arrives: the control plane gets a RolloutRequest of specs, with
    the specs' own defaults (none re-stated on the way)."""
    control = FakeControl()
    body = {"green": {"G": {"model": {"name": "m", "path": "/models/m.onnx"}, "batching": {"max_batch_size": 8},
                            "weight": 2},
                      "P": {"variant": {"model": "m", "replicas": 2}, "models": {"m": {"name": "m", "path": "/m"}}}},
            "strategy": "linear", "linear_step": 25, "alarms": {"max_error_rate": 0.02}}
    r = _call(ControlAPI(control, None), ["endpoints", "ep", "rollouts"], "POST", body=orjson.dumps(body))
    assert r.status_code == 202
    ((endpoint, request),) = control.calls
    assert endpoint == "ep" and isinstance(request, RolloutRequest)
    green = request.green["G"]
    assert isinstance(green.model, ModelSpec) and green.model.intra_op_threads == 1  # the spec's own default
    assert green.batching == BatchingSpec(max_batch_size=8) and green.weight == 2.0
    assert request.green["P"].added("P").variant == VariantSpec(name="P", model="m", replicas=2)
    assert (request.strategy, request.linear_step, request.canary_percent) == ("linear", 25.0, 10.0)
    assert request.alarms.max_error_rate == 0.02


@pytest.mark.parametrize("body, field", [
    ({"green": {"G": {"model": {"name": "m"}}}, "strategy": "canary"}, "path"),
    ({"green": {"G": {"model": {"name": "m", "path": "p"}, "wieght": 1}}, "strategy": "canary"}, "wieght"),
    ({"green": {}, "strategy": "canary"}, "green"),
    ({"green": {"G": {"model": {"name": "m", "path": "p"}}}, "strategy": "blue"}, "strategy"),
    ({"green": {"G": {"model": {"name": "m", "path": "p"}}}, "strategy": "canary", "canary_percent": 0},
     "canary_percent"),
    ({"green": {"G": {"model": {"name": "m", "path": "p"}}}, "strategy": "canary",
      "alarms": {"max_eror_rate": 0.5}}, "max_eror_rate"),
    ({"green": {"G": {"model": {"name": "m", "path": "p"}}}, "strategy": "canary",
      "alarms": {"bias_facets": [{"name": "age", "treshold": 40}]}}, "treshold"),
    ({"green": {"G": {"variant": {"model": "m"}}}, "strategy": "canary"}, "models"),
    ({"green": {"G": {"variant": {"model": "m", "replicas": 0}, "models": {"m": {"name": "m", "path": "p"}}}},
      "strategy": "canary"}, "replicas")])
def test_a_bad_rollout_request_is_a_400_naming_the_field(body, field):
    control = FakeControl()
    r = _call(ControlAPI(control, None), ["endpoints", "ep", "rollouts"], "POST", body=orjson.dumps(body))
    assert r.status_code == 400 and field in orjson.loads(r.body)["error"], r.body
    assert control.calls == []  # it never reached the control plane


@pytest.mark.parametrize("option, field", [("--canary-percent", "canary_percent"), ("--linear-step", "linear_step"),
                                           ("--max-error-rate", "max_error_rate")])
def test_the_rollout_cli_checks_its_options_as_the_control_api_does(tmp_path, option, field):
    """`ferry rollout` builds the same RolloutRequest: an option out of range is refused before any call,
    naming the request's field (the CLI re-states neither the defaults nor the bounds)."""
    import yaml
    from typer.testing import CliRunner

    from ferry.cli import app

    (tmp_path / "green.yaml").write_text(yaml.safe_dump({
        "models": [{"name": "m", "path": "m.onnx"}], "endpoints": [{"name": "ep", "variants": [{"model": "m"}]}]}))
    result = CliRunner().invoke(app, ["rollout", "ep", "--to", str(tmp_path / "green.yaml"), option, "200",
                                      "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and field in result.output, result.output
