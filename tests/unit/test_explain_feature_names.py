"""Issue 10 item 5: `ferry explain` on headerless demo rows names the features - from --feature-names, or
from the model's feature_names metadata - instead of feature_0..feature_7."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ferry.cli import app
from ferry.demo import MODEL_FEATURES, make_credit_data, model_frame, train_model

runner = CliRunner()


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    df = make_credit_data(600, seed=2)
    (root / "model.onnx").write_bytes(train_model(df))
    model_frame(df.head(30)).to_csv(root / "rows.csv", index=False, header=False)
    return root


def _explain(demo_files, out, *args: str):
    return runner.invoke(app, ["explain", "--model", str(demo_files / "model.onnx"),
                               "--data", str(demo_files / "rows.csv"), "--no-header", *args, "--out", str(out)])


def _features(out) -> list[str]:
    (entry,) = json.loads(out.read_text())["explanations"]["kernel_shap"].values()
    return sorted(entry["global_shap_values"])


def test_headerless_rows_take_the_model_metadata_names(demo_files, tmp_path):
    out = tmp_path / "a.json"
    r = _explain(demo_files, out)
    assert r.exit_code == 0, r.output
    assert _features(out) == sorted(MODEL_FEATURES)


def test_feature_names_option_names_headerless_rows_and_checks_the_count(demo_files, tmp_path):
    names = [f"f{i}" for i in range(len(MODEL_FEATURES))]
    out = tmp_path / "b.json"
    r = _explain(demo_files, out, "--feature-names", ",".join(names))
    assert r.exit_code == 0, r.output
    assert _features(out) == sorted(names)
    r = _explain(demo_files, out, "--feature-names", "a,b")
    assert r.exit_code == 2 and "8 columns but 2 feature names" in r.output
