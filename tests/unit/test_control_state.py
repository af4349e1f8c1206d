"""The control plane's traffic state: validated weight changes, versions, persistence across restarts."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import FerryError
from serving.control.deployment import Control
from serving.control.state import TrafficState

INITIAL = TrafficState(endpoints={"ep": {"weights": {"A": 3, "B": 1}}})


def test_weights_change_and_bad_changes_say_why():
    new = INITIAL.with_weights("ep", {"A": 0})
    assert new.version == 1 and new.endpoints["ep"].weights == {"A": 0, "B": 1}
    for endpoint, weights, status, needle in [
        ("nope", {"A": 1}, 404, "not found"), ("ep", {"Z": 1}, 400, "no variant"),
        ("ep", {"A": -1}, 400, ">= 0"), ("ep", {"A": float("nan")}, 400, ">= 0"),
        ("ep", {"A": 0, "B": 0}, 400, "positive"), ("ep", {"A": "x"}, 400, ">= 0")]:
        with pytest.raises(FerryError) as err:
            INITIAL.with_weights(endpoint, weights)
        assert err.value.error.status == status and needle in err.value.error.message


def test_a_restart_of_the_same_deploy_file_keeps_the_live_state(tmp_path, monkeypatch):
    applied = []

    async def fake_apply(self):
        applied.append(self.state.version)

    async def fake_apply_when_running(self):
        applied.append(("on start", self.state.version))

    monkeypatch.setattr(Control.func_or_class, "_apply", fake_apply)
    monkeypatch.setattr(Control.func_or_class, "_apply_when_running", fake_apply_when_running)
    doc = {"applications": [{"name": "ferry", "route_prefix": "/", "import_path": "ferry.app:build", "args": {}}]}

    async def scenario():
        control = Control.func_or_class(doc, INITIAL, str(tmp_path))
        assert (await control.set_weights("ep", {"B": 9}))["traffic"]["endpoints"]["ep"]["weights"] == {"A": 3, "B": 9}
        assert "error" in await control.set_weights("ep", {"Q": 1})
        again = Control.func_or_class(doc, INITIAL, str(tmp_path))
        other = Control.func_or_class({**doc, "x": 1}, INITIAL, str(tmp_path))  # another deploy file
        await asyncio.sleep(0)
        return again.traffic(), other.traffic()

    again, other = asyncio.run(scenario())
    assert applied == [1, ("on start", 1)]  # applied on change, and re-applied when the same file restarts
    assert again["endpoints"]["ep"]["weights"] == {"A": 3, "B": 9} and again["version"] == 1
    assert other["endpoints"]["ep"]["weights"] == {"A": 3, "B": 1}


def test_without_its_config_document_the_control_plane_says_why():
    control = Control.func_or_class(None, INITIAL, "/nonexistent")
    result = asyncio.run(control.set_weights("ep", {"A": 1}))
    assert result["error"]["status"] == 503 and "serve.run" in result["error"]["message"]


def test_green_variants_of_any_shape_become_applications_of_their_own_deployments():
    """A green pipeline with a step on its own replicas, and a model on its own deployment: one route-less
    application per deployment, built by serving.control.green; the in-gateway green needs none; removing a
    variant removes its applications; a green that names a model it does not give, or is no variant, is a 400."""
    from serving.control import green

    model = {"name": "m", "path": "/models/m.onnx"}
    pipe = green.added_variant("P", {"variant": {"pipeline": [{"python": "steps:encode"},
                                                              {"model": "m", "in_process": False}]},
                                     "models": {"m": model, "unused": {"name": "unused", "path": "x"}}})
    own = green.added_variant("O", {"variant": {"model": "m", "replicas": 2}, "models": {"m": model}})
    plain = green.added_variant("G", {"model": model})
    assert list(pipe.models) == ["m"] and pipe.models["m"]["path"] == model["path"] and pipe.variant["name"] == "P"
    state = INITIAL.with_variants("ep", added={"P": pipe, "O": own, "G": plain})
    apps = green.applications(state.endpoints, None)
    assert [(a["name"], a["route_prefix"], a["import_path"]) for a in apps] == [
        ("ep.O", None, green.IMPORT_PATH), ("ep.P.m", None, green.IMPORT_PATH)]
    assert [a["name"] for a in green.applications(state.with_variants("ep", removed=["P"]).endpoints, None)] == ["ep.O"]
    for body, needle in [({"variant": {"model": "m"}, "models": {}}, "['m']"),
                         ({"variant": {"model": "m", "pipeline": [{"model": "m"}, {"model": "m"}]}}, "exactly one")]:
        with pytest.raises(FerryError) as err:
            green.added_variant("X", body)
        assert err.value.error.status == 400 and needle in err.value.error.message, err.value.error.message
