"""The whole monitor loop without a server: capture files -> scheduled runs -> reports and metrics.

Demo data and model; clean traffic, then drifted traffic (income shifted, more nulls in debt_ratio, an
unknown employment code), ground truth for part of it. Each monitor type runs through run_once.
"""

import json
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from ferry.demo import MODEL_FEATURES
from monitor.runner import list_executions, run_once, show_execution
from monitor.spec import BiasSpec
from tests.monitor_world import EP, NOW, build_world
from tests.monitor_world import spec as _spec


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("mon"))


def _gauge(name, **labels):
    return REGISTRY.get_sample_value(name, labels)


def test_data_quality_flags_exactly_the_drifted_features(world):
    spec = _spec(world, "dq", "data_quality", b="dq")
    clean = run_once(spec, NOW - timedelta(hours=1))
    assert clean.status == "Completed", show_execution(clean.path)["violations"]
    ex = run_once(spec, NOW)
    assert ex.status == "CompletedWithViolations" and ex.item_count == 500
    got = {(v["feature_name"], v["constraint_check_type"]) for v in show_execution(ex.path)["violations"]}
    assert got == {("income", "baseline_drift_check"), ("debt_ratio", "completeness_check"),
                   ("employment_code", "baseline_drift_check")}
    lab = {"endpoint": EP, "schedule": "dq"}
    assert _gauge("ferry_monitor_violations", monitor_type="data_quality", check_type="baseline_drift_check",
                  **lab) == 2
    assert _gauge("ferry_monitor_feature_baseline_drift", feature="income", **lab) > 0.3
    assert _gauge("ferry_monitor_feature_non_null", feature="debt_ratio", **lab) == pytest.approx(0.8)
    assert _gauge("ferry_monitor_execution_status", status="CompletedWithViolations", **lab) == 1


def test_empty_window_fails_with_reason(world):
    ex = run_once(_spec(world, "dq", "data_quality", b="dq"), NOW + timedelta(days=3))
    assert ex.status == "Failed" and ex.failure_reason.startswith("no captured data in window")
    assert [e["status"] for e in list_executions(world / "out", EP, "dq")][-1] == "Failed"


def test_model_quality_drops_below_constraint(world):
    spec = _spec(world, "mq", "model_quality", b="mq", probability_attribute="probability")
    ok = run_once(spec, NOW - timedelta(hours=1))
    bad = run_once(spec, NOW)
    assert bad.status == "CompletedWithViolations"
    names = {v["metric_name"] for v in show_execution(bad.path)["violations"]}
    assert {"accuracy", "f1"} <= names
    stats = json.loads((world / "out" / EP / "mq" / NOW.strftime("%Y-%m-%dT%H-%M-%SZ") / "statistics.json").read_text())
    assert stats["dataset"]["item_count"] == 250  # the rows that have ground truth
    assert stats["binary_classification_metrics"]["accuracy"]["standard_deviation"] != "NaN"
    assert _gauge("ferry_monitor_model_quality", endpoint=EP, schedule="mq", metric="accuracy") < \
        json.loads((world / "mq" / "constraints.json").read_text())["binary_classification_constraints"]["accuracy"]["threshold"]
    assert ok.status in ("Completed", "CompletedWithViolations")


def test_bias_and_attribution_monitors_run(world):
    bias = _spec(world, "bias", "bias", b="bias", input_columns=MODEL_FEATURES,
                 bias=BiasSpec(facets=[{"name": "age", "threshold": 60}]))
    ex = run_once(bias, NOW)
    assert ex.status in ("Completed", "CompletedWithViolations"), ex.failure_reason
    assert _gauge("ferry_monitor_bias_metric", endpoint=EP, schedule="bias", facet="age",
                  facet_value="(60, 79]", metric="DPPL") is not None
    attr = _spec(world, "attr", "attribution", b="attr", model=str(world / "model.onnx"), features=MODEL_FEATURES,
                 explain_max_rows=100)
    ex = run_once(attr, NOW)
    assert ex.status in ("Completed", "CompletedWithViolations"), ex.failure_reason
    ndcg = _gauge("ferry_monitor_attribution_ndcg", endpoint=EP, schedule="attr", label="label0")
    assert 0 < ndcg <= 1
