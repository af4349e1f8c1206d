"""The whole monitor loop without a server: capture files -> scheduled runs -> reports and metrics.

Demo data and model; clean traffic, then drifted traffic (income shifted, more nulls in debt_ratio, an
unknown employment code), ground truth for part of it. Each monitor type runs through run_once.
"""

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from ferry.demo import MODEL_FEATURES, make_credit_data, model_matrix, train_model
from monitor import ground_truth, jobs
from monitor.runner import list_executions, run_once, show_execution
from monitor.spec import SCHEDULE_TYPES, BiasSpec, MonitoringScheduleSpec
from serving.capture import build_record, make_sink
from serving.spec import DataCaptureSpec

EP = "credit-risk"
NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("mon")
    df = make_credit_data(3000, seed=11)
    train, test = df.iloc[:2000], df.iloc[2000:].reset_index(drop=True)
    model = train_model(train)
    (root / "model.onnx").write_bytes(model)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    def predict(x):
        label, prob = sess.run(["label", "probabilities"], {"input": x})
        return label, prob[:, 1]

    xtrain = pd.DataFrame(model_matrix(train), columns=MODEL_FEATURES)
    jobs.baseline_data_quality(xtrain, root / "dq")
    lab, prob = predict(xtrain.to_numpy(np.float32))
    mq_base = pd.DataFrame({"label": train["approved"].to_numpy(), "prediction": lab, "probability": prob})
    jobs.baseline_model_quality(mq_base, root / "mq", probability_attribute="probability")
    bias_base = xtrain.assign(label=train["approved"].to_numpy(), prediction=lab)
    jobs.baseline_bias(bias_base, root / "bias", label="label", positive_label_values=[1],
                       facets=[{"name": "age", "threshold": 60}], predicted_label="prediction")
    jobs.baseline_attribution(xtrain, root / "attr", str(root / "model.onnx"), MODEL_FEATURES, max_rows=200)

    spec = DataCaptureSpec(enabled=True, destination=str(root / "capture"))

    def send(frame, start, gt_flip):
        x = model_matrix(frame)
        lab, prob = predict(np.nan_to_num(x, nan=0.0).astype(np.float32))
        sink = make_sink(spec, EP, None)
        gts = []
        for i in range(len(frame)):
            row = ",".join("" if np.isnan(v) else f"{v:.6g}" for v in x[i])
            r = build_record(spec, variant="AllTraffic", input_data=row, input_content_type="text/csv",
                             output_data=f"{lab[i]},{prob[i]:.6f}", output_content_type="text/csv",
                             inference_id=f"{start:%H%M}-{i}", inference_time=start + timedelta(seconds=i))
            sink.put(r)
            if i % 2 == 0:  # ground truth for half the requests
                y = int(frame["approved"].iloc[i])
                gts.append(ground_truth.record(f"{start:%H%M}-{i}", 1 - y if gt_flip and i % 4 == 0 else y))
        sink.close()
        gt_dir = root / "gt" / f"{start:%H}"
        gt_dir.mkdir(parents=True, exist_ok=True)
        (gt_dir / "labels.jsonl").write_text("\n".join(json.dumps(g) for g in gts) + "\n")

    send(test.iloc[:500], NOW - timedelta(hours=2), gt_flip=False)
    drifted = test.iloc[500:].copy()
    drifted["income"] = drifted["income"] * 2.5
    drifted.loc[drifted.index[::5], "debt_ratio"] = np.nan
    drifted.loc[drifted.index[::3], "employment"] = "retired"  # unknown category -> code -1
    send(drifted, NOW - timedelta(minutes=50), gt_flip=True)
    return root


def _spec(world, name, kind, **kw):
    if SCHEDULE_TYPES[kind].needs_ground_truth:
        kw["ground_truth"] = str(world / "gt")
    return MonitoringScheduleSpec(name=name, endpoint=EP, monitor_type=kind, baseline=str(world / kw.pop("b")),
                                  capture=str(world / "capture"), output=str(world / "out"),
                                  output_columns=["prediction", "probability"], **kw)


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
