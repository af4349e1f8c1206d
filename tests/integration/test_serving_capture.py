"""Data capture from the serving path: SageMaker capture JSONL for HTTP (SageMaker and V2) and gRPC calls."""

from __future__ import annotations

import io
import json
import time
import uuid

import httpx
import numpy as np
import tritonclient.grpc as tg
import tritonclient.http as th

from monitor.capture_reader import read_capture

CSV_ROW = "35,52000,0.25,120,4,9000,0,1"


def captured(folder, ids: set[str], timeout_s: float = 20.0) -> dict[str, dict]:
    """Capture records whose inferenceId is in `ids`, waiting for the sink's batched writes."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict] = {}
    while time.monotonic() < deadline:
        found = {}
        for f in folder.rglob("*.jsonl"):
            for line in f.read_text().splitlines():
                rec = json.loads(line)
                iid = rec["eventMetadata"].get("inferenceId")
                if iid in ids:
                    found[iid] = rec
        if len(found) == len(ids):
            break
        time.sleep(0.3)
    return found


def test_sagemaker_requests_are_captured_with_their_bodies(ferry_url, demo_dir):
    ids = {f"cap-{uuid.uuid4().hex[:8]}-{i}" for i in range(20)}
    bodies = {}
    with httpx.Client(timeout=30) as c:
        for iid in ids:
            r = c.post(f"{ferry_url}/endpoints/credit-risk/invocations", content=CSV_ROW,
                       headers={"content-type": "text/csv", "X-Amzn-SageMaker-Inference-Id": iid})
            assert r.status_code == 200
            bodies[iid] = r.text
    recs = captured(demo_dir / "capture" / "credit-risk", ids)
    assert set(recs) == ids  # 100% sampling: nothing lost
    some = next(iter(ids))
    rec = recs[some]
    assert rec["variant"] == "AllTraffic" and rec["eventVersion"] == "0"
    assert rec["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                                   "data": CSV_ROW, "encoding": "CSV"}
    assert rec["captureData"]["endpointOutput"]["data"] == bodies[some]
    hour_dirs = {p.parent.relative_to(demo_dir / "capture" / "credit-risk").parts[:1] for p in
                 (demo_dir / "capture" / "credit-risk").rglob("*.jsonl")}
    assert ("AllTraffic",) in hour_dirs


def test_every_protocol_is_captured_and_reads_back_as_the_same_row(ferry_url, grpc_port, demo_dir, tmp_path):
    """SageMaker CSV, JSON and NPY, V2 JSON and binary, gRPC typed and raw: one capture folder, read by the
    monitor's reader through the codecs that served them, gives the same feature row and label each time."""
    row = np.array([CSV_ROW.split(",")], dtype=np.float32)
    run = uuid.uuid4().hex[:8]
    ids = {}
    with httpx.Client(timeout=30) as c:
        npy = io.BytesIO()
        np.save(npy, row)
        for kind, ctype, body in [("csv", "text/csv", CSV_ROW), ("json", "application/json",
                                  json.dumps({"instances": row.tolist()})), ("npy", "application/x-npy", npy.getvalue())]:
            ids[kind] = f"{kind}-{run}"
            r = c.post(f"{ferry_url}/endpoints/credit-risk/invocations", content=body,
                       headers={"content-type": ctype, "X-Amzn-SageMaker-Inference-Id": ids[kind]})
            assert r.status_code == 200, r.text
    http = th.InferenceServerClient(ferry_url.removeprefix("http://"))
    grpc = tg.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    for binary in (False, True):
        inp = th.InferInput("input", [1, 8], "FP32")
        inp.set_data_from_numpy(row, binary_data=binary)
        ids[f"v2-{binary}"] = f"v2-{binary}-{run}"
        http.infer("credit-risk", [inp], request_id=ids[f"v2-{binary}"],
                   outputs=[th.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")])
    inp = tg.InferInput("input", [1, 8], "FP32")
    inp.set_data_from_numpy(row)
    ids["grpc"] = f"grpc-{run}"
    grpc.infer("credit-risk", [inp], request_id=ids["grpc"])
    recs = captured(demo_dir / "capture" / "credit-risk", set(ids.values()))
    assert set(recs) == set(ids.values())
    assert recs[ids["v2-True"]]["captureData"]["endpointInput"]["observedContentType"].startswith(
        "application/vnd.sagemaker-triton.binary+json;json-header-size=")
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs.values()))
    df = read_capture(tmp_path)
    assert df.attrs["skipped"] == {}
    assert len(df) == len(ids)
    np.testing.assert_allclose(df[[f"_c{i}" for i in range(8)]].to_numpy(float), np.repeat(row, len(ids), 0), rtol=1e-6)
    assert df["prediction_0"].nunique() == 1  # the label, whatever the protocol wrote it as
    np.testing.assert_allclose(df["prediction_2"].astype(float), df["prediction_2"].astype(float).iloc[0], rtol=1e-6)


def test_failed_requests_are_not_captured_and_never_fail(ferry_url, demo_dir):
    iid = f"bad-{uuid.uuid4().hex[:8]}"
    r = httpx.post(f"{ferry_url}/endpoints/credit-risk/invocations", content="1,2",
                   headers={"content-type": "text/csv", "X-Amzn-SageMaker-Inference-Id": iid})
    assert r.status_code == 400
    assert captured(demo_dir / "capture" / "credit-risk", {iid}, timeout_s=2) == {}
