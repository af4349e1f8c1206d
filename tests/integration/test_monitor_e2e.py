"""End to end on real Ray Serve: a demo endpoint with capture on, clean then drifted traffic, ground truth
for part of it; scheduled runs flag exactly the drifted features and the model-quality drop, and the
Prometheus gauges show it.

Deploys its own application (`ferry-e2e-monitor`, route prefix /e2e) on the session's Ray Serve so the shared
endpoints stay as they are.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from ferry.config import parse_config
from ferry.demo import MODEL_FEATURES, demo_config, model_matrix
from monitor import ground_truth, jobs
from monitor.capture_reader import read_capture
from monitor.runner import run_once, show_execution
from monitor.spec import MonitoringScheduleSpec

EP = "credit-monitored"
OUTPUTS = ["prediction", "prob_0", "prob_1"]


@pytest.fixture(scope="module")
def monitored(ray_serve, demo_dir, tmp_path_factory):
    from ferry.app import application
    from serving.deploy import deploy

    root = tmp_path_factory.mktemp("e2e-monitor")
    doc = demo_config(pipelines=False, ab=False)  # the monitored endpoint alone
    doc["server"].update(http_port=ray_serve)
    doc["endpoints"][0].update(name=EP, data_capture={"enabled": True, "sampling_percentage": 100,
                                                      "destination": str(root / "capture")})
    cfg = parse_config(doc, base=demo_dir, environ={})
    deploy(application(cfg, demo_dir), timeout_s=240, app_name="ferry-e2e-monitor", route_prefix="/e2e")
    yield f"http://127.0.0.1:{ray_serve}/e2e", root
    from ray import serve

    serve.delete("ferry-e2e-monitor")  # one application again: gRPC clients need no `application` metadata


def _send(url: str, frame: pd.DataFrame, prefix: str) -> None:
    x = model_matrix(frame)
    with httpx.Client(timeout=30) as c:
        for i, row in enumerate(x):
            body = ",".join("nan" if np.isnan(v) else repr(float(v)) for v in row)
            r = c.post(f"{url}/endpoints/{EP}/invocations", content=body,
                       headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": f"{prefix}-{i}"})
            assert r.status_code == 200, r.text


def _gauge(name, **labels):
    return REGISTRY.get_sample_value(name, labels)


def test_scheduled_runs_flag_the_drift(monitored, demo_dir):
    url, root = monitored
    train = pd.read_csv(demo_dir / "train.csv")
    test = pd.read_csv(demo_dir / "test.csv")
    xtrain = pd.DataFrame(model_matrix(train), columns=MODEL_FEATURES)
    jobs.baseline_data_quality(xtrain, root / "dq")
    sess = ort.InferenceSession(str(demo_dir / "model.onnx"))
    label, prob = sess.run(["label", "probabilities"], {"input": xtrain.to_numpy(np.float32)})
    jobs.baseline_model_quality(pd.DataFrame({"label": train["approved"], "prediction": label,
                                              "prob_1": prob[:, 1]}), root / "mq", probability_attribute="prob_1")

    clean, drifted = test.iloc[:300].copy(), test.iloc[300:600].copy()
    drifted["income"] *= 2.5
    drifted.loc[drifted.index[::5], "debt_ratio"] = np.nan
    drifted.loc[drifted.index[::3], "employment"] = "retired"

    t0 = datetime.now(timezone.utc)
    _send(url, clean, "clean")
    time.sleep(1.1)
    t_mid = datetime.now(timezone.utc)
    time.sleep(1.1)
    _send(url, drifted, "drift")
    t_end = datetime.now(timezone.utc) + timedelta(seconds=1)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(read_capture(root / "capture" / EP)) < 600:
        time.sleep(0.5)
    assert len(read_capture(root / "capture" / EP)) == 600, "every request is captured at 100% sampling"

    gts = [ground_truth.record(f"clean-{i}", int(y)) for i, y in enumerate(clean["approved"]) if i % 2 == 0]
    gts += [ground_truth.record(f"drift-{i}", 1 - int(y) if i % 4 == 0 else int(y))
            for i, y in enumerate(drifted["approved"]) if i % 2 == 0]
    (root / "gt").mkdir()
    (root / "gt" / "labels.jsonl").write_text("\n".join(json.dumps(g) for g in gts) + "\n")

    def spec(name, kind, run_at, since, **kw):
        return MonitoringScheduleSpec(name=name, endpoint=EP, monitor_type=kind, capture=str(root / "capture"),
                                      output=str(root / "out"), output_columns=OUTPUTS,
                                      window_start_offset_s=(run_at - since).total_seconds(), **kw)

    dq_clean = run_once(spec("dq", "data_quality", t_mid, t0, baseline=str(root / "dq")), t_mid)
    assert dq_clean.status == "Completed", show_execution(dq_clean.path)["violations"]
    dq = run_once(spec("dq", "data_quality", t_end, t_mid, baseline=str(root / "dq")), t_end)
    got = {(v["feature_name"], v["constraint_check_type"]) for v in show_execution(dq.path)["violations"]}
    assert got == {("income", "baseline_drift_check"), ("debt_ratio", "completeness_check"),
                   ("employment_code", "baseline_drift_check")}
    lab = {"endpoint": EP, "schedule": "dq"}
    assert _gauge("ferry_monitor_feature_baseline_drift", feature="income", **lab) > 0.1
    assert _gauge("ferry_monitor_feature_non_null", feature="debt_ratio", **lab) == pytest.approx(0.8)

    mq = run_once(spec("mq", "model_quality", t_end, t_mid, baseline=str(root / "mq"), ground_truth=str(root / "gt"),
                       probability_attribute="prob_1"), t_end)
    assert mq.status == "CompletedWithViolations"
    assert "accuracy" in {v["metric_name"] for v in show_execution(mq.path)["violations"]}
    assert _gauge("ferry_monitor_violations", endpoint=EP, schedule="mq", monitor_type="model_quality",
                  check_type="LessThanThreshold") >= 1
