"""The Ray Serve application builder and `ferry render serve-config`: one ferry.yaml, one application."""

from __future__ import annotations

import importlib

import yaml
from typer.testing import CliRunner

from ferry.cli import app
from ferry.demo import demo_config


def test_render_serve_config_builds_the_ferry_application(tmp_path):
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(demo_config()))
    (tmp_path / "model.onnx").write_bytes(b"")  # not loaded: building an application only binds deployments
    result = CliRunner().invoke(app, ["render", "serve-config", "-f", str(tmp_path / "ferry.yaml"),
                                      "--base-dir", "/etc/ferry"])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    assert doc["http_options"] == {"host": "127.0.0.1", "port": 8080}
    assert doc["grpc_options"]["port"] == 9000
    (application,) = doc["applications"]
    assert application["name"] == "ferry" and application["route_prefix"] == "/"
    assert application["args"] == {"config": demo_config(), "base_dir": "/etc/ferry"}
    module, _, func = application["import_path"].partition(":")
    built = getattr(importlib.import_module(module), func)(application["args"])
    gateway = built._bound_deployment
    assert gateway.name == "gateway"
    endpoints = gateway.init_args[0]
    assert [ep.name for ep in endpoints] == ["credit-risk", "credit-risk-pipeline", "credit-risk-by-id", "credit-risk-ab"]
    remote = gateway.init_args[3]
    assert remote == {}  # the demo's variants and pipeline steps run inside the gateway (the default shape)
    control = gateway.init_args[7]._bound_deployment
    assert control.name == "control" and control.init_args[4]["credit-risk"] == "/etc/ferry/capture"  # resolved


def test_builder_applies_env_overrides(monkeypatch, tmp_path):
    from ferry.app import build

    monkeypatch.setenv("FERRY_SERVER__GATEWAY_REPLICAS", "3")
    built = build({"config": demo_config(), "base_dir": str(tmp_path)})
    assert built._bound_deployment._deployment_config.num_replicas == 3


def test_the_deploying_shells_overrides_travel_as_the_applications_env_vars():
    """`ferry up --address`: the builder runs on the cluster, whose processes do not have this shell's FERRY_*
    variables (an auth token among them), so they go with the application; other variables stay here."""
    from ray.serve.schema import ServeDeploySchema

    from ferry.app import serve_config
    from ferry.config import override_vars, parse_config

    environ = {"FERRY_SERVER__AUTH_TOKEN": "s3cret", "FERRY_SERVER__GATEWAY_REPLICAS": "2", "FERRY_URL": "x",
               "HOME": "/root", "FERRY_NOPE__X": "1"}
    env = override_vars(environ)
    assert env == {"FERRY_SERVER__AUTH_TOKEN": "s3cret", "FERRY_SERVER__GATEWAY_REPLICAS": "2"}
    doc = serve_config(demo_config(), "/srv", parse_config(demo_config(), environ=environ), env=env)
    ServeDeploySchema.model_validate(doc)
    assert doc["applications"][0]["runtime_env"] == {"env_vars": env}
    assert "runtime_env" not in serve_config(demo_config(), "/srv", parse_config(demo_config()))["applications"][0]


def test_the_builder_hands_the_control_plane_the_document_it_was_deployed_with(monkeypatch):
    """The control plane re-applies its serve_doc on every traffic change: a runtime_env missing there would make
    Ray Serve rebuild the application with the cluster's environment, without the deploying shell's overrides."""
    import ferry.app
    from ferry.config import override_vars, parse_config

    env = override_vars({"FERRY_SERVER__AUTH_TOKEN": "s3cret", "FERRY_SERVER__GATEWAY_REPLICAS": "2"})
    deployed = ferry.app.serve_config(demo_config(), "/srv", parse_config(demo_config(), environ=env), env=env)
    for k, v in env.items():  # what the application's runtime_env gives the builder's process on the cluster
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FERRY_SERVER__HOST", "127.0.0.1")  # the cluster's own: stays the cluster's
    seen = {}
    monkeypatch.setattr(ferry.app, "application", lambda cfg, base, serve_doc: seen.update(doc=serve_doc, cfg=cfg))
    ferry.app.build(deployed["applications"][0]["args"])
    assert seen["doc"] == deployed
    assert seen["cfg"].server.gateway_replicas == 2


def test_a_variant_with_its_own_scaling_gets_its_own_deployment(tmp_path):
    from ferry.app import build

    doc = demo_config()
    doc["endpoints"][0]["variants"] += [
        {"name": "Scaled", "model": "credit-gbm", "initial_weight": 0, "replicas": 2},
        {"name": "Forced", "model": "credit-gbm", "initial_weight": 0, "replicas": 2, "in_process": True}]
    remote = build({"config": doc, "base_dir": str(tmp_path)})._bound_deployment.init_args[3]
    assert set(remote) == {"credit-risk.Scaled"}
    assert remote["credit-risk.Scaled"].handle._bound_deployment._deployment_config.num_replicas == 2
