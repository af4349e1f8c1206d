"""Data capture from the serving path: SageMaker capture JSONL for HTTP (SageMaker and V2) and gRPC calls."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import numpy as np
import tritonclient.grpc as tg

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


def test_v2_and_grpc_requests_are_captured(ferry_url, grpc_port, demo_dir):
    rid = f"v2-{uuid.uuid4().hex[:8]}"
    doc = {"id": rid, "inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32",
                                  "data": [float(v) for v in CSV_ROW.split(",")]}]}
    assert httpx.post(f"{ferry_url}/v2/models/credit-risk/infer", json=doc).status_code == 200
    gid = f"grpc-{uuid.uuid4().hex[:8]}"
    client = tg.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    inp = tg.InferInput("input", [1, 8], "FP32")
    inp.set_data_from_numpy(np.array([CSV_ROW.split(",")], dtype=np.float32))
    client.infer("credit-risk", [inp], request_id=gid)
    recs = captured(demo_dir / "capture" / "credit-risk", {rid, gid})
    assert json.loads(recs[rid]["captureData"]["endpointInput"]["data"])["id"] == rid
    grpc_in = json.loads(recs[gid]["captureData"]["endpointInput"]["data"])["tensors"][0]
    assert grpc_in["name"] == "input" and grpc_in["shape"] == [1, 8]
    assert recs[gid]["captureData"]["endpointOutput"]["encoding"] == "JSON"


def test_failed_requests_are_not_captured_and_never_fail(ferry_url, demo_dir):
    iid = f"bad-{uuid.uuid4().hex[:8]}"
    r = httpx.post(f"{ferry_url}/endpoints/credit-risk/invocations", content="1,2",
                   headers={"content-type": "text/csv", "X-Amzn-SageMaker-Inference-Id": iid})
    assert r.status_code == 400
    assert captured(demo_dir / "capture" / "credit-risk", {iid}, timeout_s=2) == {}
