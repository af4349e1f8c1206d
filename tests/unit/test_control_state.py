"""The control plane's traffic state: validated weight changes, versions, persistence across restarts."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import FerryError, unavailable
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

    async def fake_apply(self, state):
        applied.append(state.version)

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


def test_a_change_is_shown_once_the_gateways_have_applied_it_and_one_they_did_not_apply_is_a_503(tmp_path,
                                                                                                monkeypatch):
    """traffic() (and so GET /control/traffic and the rollout the CLI follows) shows a change only once _apply
    has returned, i.e. once every gateway replica has applied it; when they do not in time, the caller gets a
    503 that says so, and the change stays saved."""
    from serving.status import DeployError

    seen, fail = [], []

    async def fake_apply(self, state):
        seen.append(self.traffic()["version"])  # what a reader sees while the gateways apply `state`
        if fail:
            raise FerryError(unavailable(f"version {state.version} not applied: {fail[0]}"))

    monkeypatch.setattr(Control.func_or_class, "_apply", fake_apply)
    doc = {"applications": [{"name": "ferry", "route_prefix": "/", "import_path": "ferry.app:build", "args": {}}]}

    async def scenario():
        control = Control.func_or_class(doc, INITIAL, str(tmp_path))
        ok = await control.set_weights("ep", {"B": 9})
        fail.append(str(DeployError("gateway is UNHEALTHY")))
        return ok, await control.set_weights("ep", {"B": 2}), control.traffic()

    ok, failed, after = asyncio.run(scenario())
    assert seen == [0, 1] and ok["traffic"]["version"] == 1
    assert failed["error"]["status"] == 503 and "UNHEALTHY" in failed["error"]["message"]
    assert after["version"] == 2 and after["endpoints"]["ep"]["weights"]["B"] == 2  # saved and sent


@pytest.mark.parametrize("summaries, outcome", [
    # what Ray Serve reports after deploy_apps: DEPLOYING at once, the gateway UPDATING while replicas reconfigure
    ([("DEPLOYING", "HEALTHY"), ("DEPLOYING", "UPDATING"), ("RUNNING", "HEALTHY")], 3),
    ([("DEPLOYING", "UPDATING"), ("UNHEALTHY", "HEALTHY")], 2),
    ([("DEPLOYING", "UPDATING"), ("RUNNING", "UPSCALING")], 2),  # an autoscaling gateway adds replicas after it
    ([("DEPLOYING", "UPDATING"), ("DEPLOYING", "UPSCALING"), ("RUNNING", "DOWNSCALING")], 3),  # another deployment's trouble is not ours
    ([("DEPLOYING", "UPDATING"), ("DEPLOY_FAILED", "DEPLOY_FAILED")], "DEPLOY_FAILED"),
    ([("DEPLOYING", "UPDATING")] * 1000, "did not apply"),
])
def test_waiting_for_the_gateways_reads_serves_status_until_every_replica_runs_the_new_config(summaries, outcome,
                                                                                             monkeypatch):
    from serving import status

    calls = iter(summaries)
    asked = []

    def fake_summary(name):
        app, gateway = next(calls)
        asked.append(name)
        return {"status": app, "message": "", "deployments": {"gateway": {"status": gateway, "message": "",
                                                                          "replicas": {}}}}

    monkeypatch.setattr(status, "app_summary", fake_summary)
    if isinstance(outcome, int):
        status.wait_applied("ferry", "gateway", 5, poll_s=0)
        assert len(asked) == outcome
    else:
        with pytest.raises(status.DeployError, match=outcome):
            status.wait_applied("ferry", "gateway", 0.05, poll_s=0.001)


def test_without_its_config_document_the_control_plane_says_why():
    control = Control.func_or_class(None, INITIAL, "/nonexistent")
    result = asyncio.run(control.set_weights("ep", {"A": 1}))
    assert result["error"]["status"] == 503 and "serve.run" in result["error"]["message"]


def test_green_variants_of_any_shape_become_applications_of_their_own_deployments():
    """A green pipeline with a step on its own replicas, and a model on its own deployment: one route-less
    application per deployment, built by serving.control.green; the in-gateway green needs none; removing a
    variant removes its applications; a green that names a model it does not give, or is no variant, is
    refused naming the field."""
    from pydantic import ValidationError

    from serving.control import green
    from serving.control.state import GreenVariant
    from serving.spec import ModelSpec, VariantSpec

    model = {"name": "m", "path": "/models/m.onnx"}
    pipe = GreenVariant.model_validate({"variant": {"pipeline": [{"python": "steps:encode"},
                                                                 {"model": "m", "in_process": False}]},
                                        "models": {"m": model, "unused": {"name": "unused", "path": "x"}}}).added("P")
    own = GreenVariant.model_validate({"variant": {"model": "m", "replicas": 2}, "models": {"m": model}}).added("O")
    plain = GreenVariant.model_validate({"model": model, "batching": {"max_batch_size": 4}}).added("G")
    assert list(pipe.models) == ["m"] and pipe.models["m"] == ModelSpec(**model) and pipe.variant.name == "P"
    assert plain.variant == VariantSpec(name="G", model="m", batching={"max_batch_size": 4})
    state = INITIAL.with_variants("ep", added={"P": pipe, "O": own, "G": plain})
    apps = green.applications(state.endpoints, None)
    assert [(a["name"], a["route_prefix"], a["import_path"]) for a in apps] == [
        ("ep.O", None, green.IMPORT_PATH), ("ep.P.m", None, green.IMPORT_PATH)]
    assert [a["name"] for a in green.applications(state.with_variants("ep", removed=["P"]).endpoints, None)] == ["ep.O"]
    built = green.build(apps[0]["args"])._bound_deployment  # what Ray Serve's builder gets: JSON args
    assert built.name == "ep.O" and built._deployment_config.num_replicas == 2 and built.init_args[1] == "O"
    for body, needle in [({"variant": {"model": "m"}, "models": {}}, "['m']"),
                         ({"variant": {"model": "m", "pipeline": [{"model": "m"}, {"model": "m"}]}}, "exactly one"),
                         ({"model": model, "variant": {"model": "m"}}, "exactly one"),
                         ({"variant": {"model": "m"}, "batching": {}, "models": {"m": model}}, "batching")]:
        with pytest.raises(ValidationError) as err:
            GreenVariant.model_validate(body)
        assert needle in str(err.value), str(err.value)


def test_a_green_keeps_where_it_runs_through_the_gateways_user_config_and_the_saved_state():
    """The traffic state crosses to the gateways as JSON (user_config) and is saved as JSON: a green given only
    `num_cpus` runs on its own deployment (serving.deploy.in_process reads which fields were set), so the
    fields left at their defaults must stay unset on the way back."""
    from serving.control.state import GreenVariant
    from serving.deploy import in_process

    own = GreenVariant.model_validate({"variant": {"model": "m", "num_cpus": 0.5},
                                       "models": {"m": {"name": "m", "path": "/m.onnx"}}}).added("O")
    here = GreenVariant.model_validate({"model": {"name": "m", "path": "/m.onnx"}}).added("G")
    state = INITIAL.with_variants("ep", added={"O": own, "G": here})
    for again in (TrafficState.model_validate(state.model_dump(mode="json")),
                  TrafficState.model_validate_json(state.model_dump_json())):
        added = again.endpoints["ep"].added
        assert added["O"].variant == own.variant and added["G"].variant == here.variant
        assert not in_process(added["O"].variant) and in_process(added["G"].variant)
