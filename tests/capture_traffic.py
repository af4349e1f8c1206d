"""Captured traffic in the soak's shapes, written straight to capture files (no server): SageMaker CSV, V2 JSON
and gRPC (V2 binary) requests of the demo's rows with the demo model's two outputs, one record per request,
laid out as the capture sink writes them (a file per 5 minutes in hour folders) (tests of the monitor's memory, benchmarks/monitor_memory.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson

from core.capture import RecordFormat
from core.payloads import v2
from ferry.demo import make_credit_data, model_matrix

SHAPES = ("csv", "csv", "v2", "grpc", "grpc")  # the soak's mix: 40/s CSV, 20/s V2 JSON, 40/s gRPC


def write_traffic(folder: Path, endpoint: str, start: datetime, n: int, per_second: float = 100.0,
                  seed: int = 11) -> datetime:
    """n records from `start`, `per_second` apart, appended to the endpoint's capture files; returns the time
    after the last one."""
    rows = model_matrix(make_credit_data(200, seed=seed)).astype(np.float32)
    fmt = RecordFormat()
    files: dict[Path, list[bytes]] = {}
    for i in range(n):
        at = start + timedelta(seconds=i / per_second)
        x = rows[i % len(rows)]
        label, prob = np.array([i % 2], dtype=np.int64), np.array([[0.4, 0.6]], dtype=np.float32)
        shape = SHAPES[i % len(SHAPES)]
        if shape == "csv":
            body, ctype = ",".join(f"{v:.6g}" for v in x), "text/csv"
            out, otype = f"{label[0]},{prob[0, 0]:.6f},{prob[0, 1]:.6f}\n", "text/csv"
        elif shape == "v2":
            body = orjson.dumps({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, len(x)],
                                             "data": x.tolist()}]})
            out = orjson.dumps({"model_name": endpoint, "outputs": [
                {"name": "label", "datatype": "INT64", "shape": [1], "data": label.tolist()},
                {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": prob[0].tolist()}]})
            ctype = otype = "application/json"
        else:
            body, ctype = v2.binary_document("inputs", {"input": x[None, :]})
            out, otype = v2.binary_document("outputs", {"label": label, "probabilities": prob})
        record = fmt.record(variant="AllTraffic", input_data=body, input_content_type=ctype, output_data=out,
                            output_content_type=otype, inference_id=str(i), inference_time=at)
        opened = at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)  # a file per 5 minutes
        path = folder / endpoint / "AllTraffic" / f"{at:%Y/%m/%d/%H}" / f"{opened:%M-%S}-000-capture.jsonl"
        files.setdefault(path, []).append(orjson.dumps(record) + b"\n")
    for path, lines in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            f.write(b"".join(lines))
    return start + timedelta(seconds=n / per_second)
