"""Async workers scale on their backlog, to zero and back, on a real Ray Serve: the endpoint `async-zero`
(min 0, max 2 worker replicas, 2 requests per replica, idle 2 s) accepts requests while it has no worker,
the backlog wakes workers (6 requests ask for 3 replicas: 2, its maximum), every request completes with
onnxruntime's answer, the workers go back to zero once the queue is empty, and a new request brings one
back."""

from __future__ import annotations

import time

import httpx
import numpy as np
import onnxruntime as ort

from serving.status import app_summary

WORKER = "async-worker.async-zero"


def replicas(states=("RUNNING",)) -> int:
    counts = app_summary("ferry")["deployments"][WORKER]["replicas"]
    return sum(counts.get(s, 0) for s in states)


def wait_for(what, condition, timeout_s=90.0, every=0.1):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not after {timeout_s} s"
        time.sleep(every)
    return value


def submit(url: str, src, rid: str) -> dict:
    r = httpx.post(f"{url}/endpoints/async-zero/async-invocations",
                   headers={"X-Amzn-SageMaker-InputLocation": str(src), "X-Amzn-SageMaker-Content-Type": "text/csv",
                            "X-Amzn-SageMaker-Inference-Id": rid})
    assert r.status_code == 202, r.text
    return r.json()


def status(url: str, rid: str) -> str:
    return httpx.get(f"{url}/endpoints/async-zero/async-invocations/{rid}").json()["Status"]


def test_workers_scale_on_backlog_to_zero_and_back(ferry_url, demo_dir):
    inbox = demo_dir / "async-in"
    inbox.mkdir(exist_ok=True)
    rows = np.loadtxt(demo_dir / "test_features.csv", delimiter=",", max_rows=20).astype(np.float32)
    labels = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows})[0].tolist()
    src = inbox / "scaling.csv"
    src.write_text("\n".join(",".join(repr(float(v)) for v in r) for r in rows))
    run = f"s{time.time_ns()}"

    wait_for("the worker at zero before any request", lambda: replicas(("RUNNING", "STARTING")) == 0)
    accepted = [submit(ferry_url, src, f"{run}-{i}") for i in range(6)]  # all 202 with no worker running
    most = 0
    deadline = time.monotonic() + 120
    while not all(status(ferry_url, a["InferenceId"]) == "Completed" for a in accepted):
        most = max(most, replicas(("RUNNING", "STARTING", "PENDING_ALLOCATION", "PENDING_INITIALIZATION")))
        assert time.monotonic() < deadline, [status(ferry_url, a["InferenceId"]) for a in accepted]
        time.sleep(0.1)
    assert most == 2  # backlog 6 at 2 per replica asks for 3, capped at max_instances 2
    for a in accepted:
        assert [int(ln.split(",")[0]) for ln in open(a["OutputLocation"]).read().splitlines()] == labels

    wait_for("back to zero workers once the queue is empty for idle_s", lambda: replicas(
        ("RUNNING", "STARTING", "STOPPING")) == 0)
    again = submit(ferry_url, src, f"{run}-again")
    wait_for("a new request completed by a worker woken from zero",
             lambda: status(ferry_url, again["InferenceId"]) == "Completed", every=0.2)
    assert [int(ln.split(",")[0]) for ln in open(again["OutputLocation"]).read().splitlines()] == labels
