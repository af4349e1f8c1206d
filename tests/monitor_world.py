"""The monitor's test world: the demo model, baselines of every monitor type, clean then drifted captured traffic
with ground truth for half of it (tests/unit/test_monitor_pipeline.py, the dashboards preview)."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

from core.capture import build_record
from ferry.demo import MODEL_FEATURES, make_credit_data, model_matrix, train_model
from monitor import ground_truth, jobs
from monitor.spec import SCHEDULE_TYPES, BiasSpec, MonitoringScheduleSpec
from serving.capture import make_sink
from serving.spec import DataCaptureSpec

EP = "credit-risk"
NOW = datetime(2026, 5, 4, 12, 0, 0, tzinfo=timezone.utc)


def build_world(root: Path) -> Path:
    """Baselines of the four monitor types and two hours of captured traffic (the second drifted) under root."""
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



def spec(world: Path, name: str, kind: str, **kw) -> MonitoringScheduleSpec:
    """A schedule of `kind` over the world's capture, baseline folder `b`."""
    if SCHEDULE_TYPES[kind].needs_ground_truth:
        kw["ground_truth"] = str(world / "gt")
    return MonitoringScheduleSpec(name=name, endpoint=EP, monitor_type=kind, baseline=str(world / kw.pop("b")),
                                  capture=str(world / "capture"), output=str(world / "out"),
                                  output_columns=["prediction", "probability"], **kw)


def all_four(world: Path) -> list[MonitoringScheduleSpec]:
    """One schedule of each monitor type."""
    return [spec(world, "dq", "data_quality", b="dq"),
            spec(world, "mq", "model_quality", b="mq", probability_attribute="probability"),
            spec(world, "bias", "bias", b="bias", input_columns=MODEL_FEATURES,
                 bias=BiasSpec(facets=[{"name": "age", "threshold": 60}])),
            spec(world, "attr", "attribution", b="attr", model=str(world / "model.onnx"), features=MODEL_FEATURES,
                 explain_max_rows=100)]
