"""`ferry render helm-values`: ferry.yaml (and the files it names) become the chart's values; and the chart's
derived files (values.schema.json's ferry.yaml schema, alert and dashboard copies) are up to date."""

from __future__ import annotations

import base64
import importlib.util

import pytest
import yaml
from typer.testing import CliRunner

from ferry.cli import app
from ferry.demo import write_demo
from tests.helm import ROOT, one, template


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    write_demo(out, n_rows=400)
    return out


def _helm_values(path) -> tuple[int, dict | None, str]:
    result = CliRunner().invoke(app, ["render", "helm-values", "-f", str(path)])
    return result.exit_code, yaml.safe_load(result.stdout) if result.exit_code == 0 else None, result.output


def test_demo_reaches_the_cluster_through_helm_values(demo, tmp_path):
    code, values, output = _helm_values(demo / "ferry.yaml")
    assert code == 0, output
    original = yaml.safe_load((demo / "ferry.yaml").read_text())
    assert original["server"]["host"] == "127.0.0.1"
    assert values["ferry"] == {**original, "server": {**original["server"], "host": "0.0.0.0"}}
    assert base64.b64decode(values["files"]["model.onnx"]) == (demo / "model.onnx").read_bytes()
    assert base64.b64decode(values["files"]["credit_steps.py"]) == (demo / "credit_steps.py").read_bytes()  # pipeline steps
    for schedule in original.get("monitoring_schedules", []):  # the demo's baseline travels with it
        folder = (demo / schedule["baseline"]).resolve()
        for f in folder.rglob("*.json"):
            assert base64.b64decode(values["files"][f.relative_to(demo).as_posix()]) == f.read_bytes()
        assert values["storage"] == {"enabled": True}
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    docs = template(tmp_path / "values.yaml")
    cm = one(docs, "ConfigMap", "ferry-config")
    assert yaml.safe_load(cm["data"]["ferry.yaml"]) == values["ferry"]
    assert {base64.b64decode(v) for v in cm["binaryData"].values()} == {
        base64.b64decode(v) for v in values["files"].values()}
    args = yaml.safe_load(one(docs, "RayService")["spec"]["serveConfigV2"])["applications"][0]["args"]
    assert args == {"config": values["ferry"], "base_dir": "/srv/ferry"}


def test_a_token_in_ferry_yaml_moves_to_the_secret_and_baselines_travel(demo, tmp_path):
    doc = yaml.safe_load((demo / "ferry.yaml").read_text())
    doc["server"]["auth_token"] = "tok-123"
    (tmp_path / "model.onnx").write_bytes((demo / "model.onnx").read_bytes())
    (tmp_path / "baselines" / "dq").mkdir(parents=True)
    (tmp_path / "baselines" / "dq" / "statistics.json").write_text("{}")
    (tmp_path / "baselines" / "dq" / "constraints.json").write_text('{"features": []}')
    doc["monitoring_schedules"] = [{"name": "dq", "endpoint": "credit-risk", "baseline": "baselines/dq"}]
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(doc))
    code, values, output = _helm_values(tmp_path / "ferry.yaml")
    assert code == 0, output
    assert "auth_token" not in values["ferry"]["server"] and values["auth"] == {"token": "tok-123"}
    assert set(values["files"]) == {"model.onnx", "baselines/dq/statistics.json", "baselines/dq/constraints.json"}
    assert base64.b64decode(values["files"]["baselines/dq/constraints.json"]) == b'{"features": []}'
    (tmp_path / "values.yaml").write_text(yaml.safe_dump({**values, "storage": {"enabled": True}}))
    docs = template(tmp_path / "values.yaml")
    assert "tok-123" not in yaml.safe_dump(one(docs, "RayService"))
    assert one(docs, "Secret")["stringData"]["auth-token"] == "tok-123"


def test_files_too_big_for_a_config_map_are_refused_with_the_way_out(demo, tmp_path):
    doc = yaml.safe_load((demo / "ferry.yaml").read_text())
    (tmp_path / "model.onnx").write_bytes(b"\0" * 1_000_000)
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(doc))
    code, _, output = _helm_values(tmp_path / "ferry.yaml")
    assert code == 2 and "more than a ConfigMap holds" in output and "model.onnx" in output


def test_a_path_outside_the_folder_is_refused(demo, tmp_path):
    doc = yaml.safe_load((demo / "ferry.yaml").read_text())
    doc["models"][0]["path"] = "../model.onnx"
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"x")
    (tmp_path / "sub" / "ferry.yaml").write_text(yaml.safe_dump(doc))
    code, _, output = _helm_values(tmp_path / "sub" / "ferry.yaml")
    assert code == 2 and "outside ferry.yaml's folder" in output


def test_uris_and_absolute_paths_stay_as_they_are(demo, tmp_path):
    doc = yaml.safe_load((demo / "ferry.yaml").read_text())
    doc["models"][0]["path"] = "s3://models/credit.onnx"
    doc["models"].append({"name": "other", "path": str(demo / "model.onnx")})
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(doc))
    code, values, output = _helm_values(tmp_path / "ferry.yaml")
    assert code == 0, output
    assert "files" not in values and values["ferry"]["models"] == doc["models"]


def test_chart_derived_files_are_up_to_date():
    """values.schema.json carries ferry.yaml's current schema, and files/ the current alerts and dashboards."""
    spec = importlib.util.spec_from_file_location("helm_sync", ROOT / "helm" / "sync.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    assert sync.stale() == [], "the chart's copies are stale: run `python helm/sync.py` and commit the result"
