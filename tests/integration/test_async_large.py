"""A 200 MB CSV input through asynchronous inference on a real Ray Serve: the gateway only checks the
InputLocation and queues it, so its replica's RSS stays flat (measured before, during and after; a gateway
holding the body would grow by its 200 MB); the worker reads the file and parses it with a C reader; the
result at OutputLocation equals onnxruntime's, row for row."""

from __future__ import annotations

import time

import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import ray

SIZE = 200 * 1024 * 1024


def gateway_pids() -> list[int]:
    return [a["Pid"] for a in ray._private.state.actors().values()
            if a["State"] == "ALIVE" and a["ActorClassName"] == "ServeReplica:ferry:gateway"]


def rss_mib(pids: list[int]) -> float:
    """The largest resident set of `pids`, in MiB (from /proc)."""
    def one(pid: int) -> float:
        line = next(ln for ln in open(f"/proc/{pid}/status") if ln.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024
    return max(map(one, pids))


def test_a_200_mb_input_leaves_the_gateway_flat(ferry_url, demo_dir):
    rng = np.random.default_rng(7)
    block = (rng.random((1000, 8)) * [1, 10, 100, 5, 3, 1000, 50, 2]).astype(np.float32)
    text = ("\n".join(",".join(repr(float(v)) for v in r) for r in block) + "\n").encode()
    reps = -(-SIZE // len(text))
    src = demo_dir / "async-in" / "large.csv"
    src.parent.mkdir(exist_ok=True)
    with open(src, "wb") as f:
        for _ in range(reps):
            f.write(text)
    session = ort.InferenceSession(str(demo_dir / "model.onnx"))
    labels, probabilities = session.run(None, {"input": block})
    pids = gateway_pids()
    assert pids, "no gateway replica found in Ray's actor table"
    try:
        before = rss_mib(pids)
        r = httpx.post(f"{ferry_url}/endpoints/async/async-invocations", timeout=60, headers={
            "X-Amzn-SageMaker-InputLocation": str(src), "X-Amzn-SageMaker-Content-Type": "text/csv",
            "X-Amzn-SageMaker-Inference-Id": f"large-{time.time_ns()}"})
        assert r.status_code == 202, r.text
        peak, deadline = before, time.monotonic() + 300
        while (status := httpx.get(f"{ferry_url}/endpoints/async/async-invocations/{r.json()['InferenceId']}")
               .json())["Status"] not in ("Completed", "Failed", "Expired"):
            peak = max(peak, rss_mib(pids))
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        after = rss_mib(pids)
        assert status["Status"] == "Completed", status
        assert peak - before < 50 and after - before < 50, (before, peak, after)  # the body is 200 MiB
        out = pd.read_csv(r.json()["OutputLocation"], header=None).to_numpy()
        assert out.shape == (reps * len(block), 3)
        assert np.array_equal(out[:, 0].astype(np.int64), np.tile(labels, reps))
        np.testing.assert_allclose(out[:, 1:], np.tile(probabilities, (reps, 1)), rtol=1e-5, atol=1e-6)
    finally:
        src.unlink(missing_ok=True)
