import json
from pathlib import Path

import numpy as np
import pandas as pd

from ferry.config import load_config
from ferry.demo import BASELINE_DIR, MODEL_FEATURES, make_credit_data, model_frame, model_matrix, write_demo
from featurestore.lookup import FeatureLookup
from featurestore.store import FeatureStore


def test_generator_is_seeded_and_biased():
    a, b = make_credit_data(2000, seed=5), make_credit_data(2000, seed=5)
    pd.testing.assert_frame_equal(a, b)
    rates = a.groupby("age_group")["approved"].mean()
    assert rates["under_25"] < rates["25_to_60"] - 0.15  # the injected bias is visible


def test_write_demo_makes_a_valid_deploy_file_and_loads_the_feature_store(tmp_path):
    cfg = load_config(write_demo(tmp_path, n_rows=400), environ={})
    assert [e.name for e in cfg.endpoints] == ["credit-risk", "credit-risk-pipeline", "credit-risk-by-id", "credit-risk-ab"]
    assert [s.name for s in cfg.endpoints[-1].shadow_variants] == ["Challenger"]
    assert Path(cfg.models[-1].path) == tmp_path / "challenger.onnx" and Path(cfg.models[-1].path).is_file()
    assert cfg.feature_groups[0].name == "applicants"
    store = FeatureStore(cfg.feature_store_settings(tmp_path), cfg.feature_groups)
    try:
        test = pd.read_csv(tmp_path / "test.csv")
        got = FeatureLookup(store, "applicants", MODEL_FEATURES)(test["applicant_id"].tolist())
        np.testing.assert_allclose(got, model_matrix(test), rtol=1e-6)
    finally:
        store.close()


def test_the_docs_endpoints_pasted_under_the_demos_endpoints_make_a_valid_deploy_file(tmp_path):
    """docs/endpoints.md: "Add [these endpoints] to the demo's deploy file, under `endpoints:`"."""
    docs = (Path(__file__).parents[2] / "docs" / "endpoints.md").read_text()
    snippet = docs.split("### On the demo", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    path = write_demo(tmp_path, n_rows=400)
    path.write_text(path.read_text().replace("endpoints:\n", "endpoints:\n" + snippet, 1))
    cfg = load_config(path, environ={})
    assert [e.name for e in cfg.endpoints][:3] == ["credit-risk-serverless", "credit-risk-async", "credit-risk"]


def test_demo_rows_are_named_full_precision_and_what_the_model_takes(tmp_path):
    """Issue 10 item 5: model rows are written at full precision; a table written with a header names the
    features; the model's metadata names them too."""
    import onnx

    write_demo(tmp_path, n_rows=400)
    test = pd.read_csv(tmp_path / "test.csv")
    headerless = pd.read_csv(tmp_path / "test_features.csv", header=None)
    np.testing.assert_array_equal(headerless.to_numpy(), model_frame(test).to_numpy())  # exact, no rounding
    assert (headerless.to_numpy(np.float32) == model_matrix(test)).all()
    named = pd.read_csv(tmp_path / "train_features.csv")
    assert list(named.columns) == MODEL_FEATURES
    meta = {p.key: p.value for p in onnx.load(tmp_path / "model.onnx").metadata_props}
    assert meta["feature_names"].split(",") == MODEL_FEATURES


def test_demo_baseline_is_the_model_features_and_flags_only_the_drifted_one(tmp_path):
    """Issue 10 item 3: the baseline holds the encoded model features (no id, no label, no strings), the
    test rows raise no alarm, and the traffic's drifted segment raises one on income alone."""
    from ferry.demo_traffic import DRIFT_FEATURE, drifted
    from monitor import jobs

    cfg = load_config(write_demo(tmp_path), environ={})
    (schedule,) = cfg.monitoring_schedules
    assert schedule.endpoint == "credit-risk" and schedule.monitor_type == "data_quality"
    assert Path(schedule.baseline) == (tmp_path / BASELINE_DIR).resolve()
    constraints = json.loads((tmp_path / BASELINE_DIR / "constraints.json").read_text())
    assert [f["name"] for f in constraints["features"]] == MODEL_FEATURES
    assert {f["inferred_type"] for f in constraints["features"]} <= {"Integral", "Fractional"}
    test = model_frame(pd.read_csv(tmp_path / "test.csv"))
    assert jobs.data_quality(test, tmp_path / BASELINE_DIR, tmp_path / "ok").violations == []
    window = pd.concat([test.head(200), drifted(test)])
    found = jobs.data_quality(window, tmp_path / BASELINE_DIR, tmp_path / "drift").violations
    assert [(v["feature_name"], v["constraint_check_type"]) for v in found] == [(DRIFT_FEATURE, "baseline_drift_check")]
