"""The async worker's handling of one queued request, without Ray: the answer at OutputLocation, a
rejected payload and an expired request at FailureLocation with the reason, each finished once."""

from __future__ import annotations

import asyncio
import os
import time

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from prometheus_client import CollectorRegistry

from ferry.demo import write_demo
from serving.asyncq.sqlite import SqliteQueue
from serving.asyncq.worker import AsyncWorker
from serving.dataplane import DataPlane
from serving.endpoint import Endpoint
from serving.spec import AsyncSpec, ModelSpec
from serving.variants import ModelRunner


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    write_demo(d)
    return d


def worker(demo, notification: dict | None = None, kafka_bootstrap: str | None = None) -> AsyncWorker:
    """The deployment's class without Ray and its polling tasks, working endpoint `ep`."""
    w = object.__new__(AsyncWorker.func_or_class)
    runner = ModelRunner(ModelSpec(name="m", path=str(demo / "model.onnx")), "AllTraffic")
    w.plane = DataPlane({"ep": Endpoint("ep", {"AllTraffic": runner}, {"AllTraffic": 1.0})}, 1 << 20)
    w.specs = {"ep": AsyncSpec(output_path="out", notification=notification)}
    w.instrument(CollectorRegistry(), kafka_bootstrap)
    return w


def put(queue, tmp_path, rid, body: bytes, ttl_s: float = 600) -> dict:
    (tmp_path / f"{rid}.csv").write_bytes(body)
    doc = {"input": str(tmp_path / f"{rid}.csv"), "content_type": "text/csv", "accept": "text/csv",
           "custom_attributes": None, "output": str(tmp_path / "out" / f"{rid}.out"),
           "failure": str(tmp_path / "err" / f"{rid}-error.out"), "timeout_s": 30}
    queue.put("ep", rid, orjson.dumps(doc).decode(), time.time() + ttl_s)
    return doc


def test_result_failure_and_expiry_each_finished_once(demo, tmp_path):
    queue = SqliteQueue(tmp_path / "q.db")
    w = worker(demo)
    rows = np.loadtxt(demo / "test_features.csv", delimiter=",", max_rows=50)
    labels = ort.InferenceSession(str(demo / "model.onnx")).run(None, {"input": rows.astype(np.float32)})[0]
    ok = put(queue, tmp_path, "ok", b"\n".join((demo / "test_features.csv").read_bytes().splitlines()[:50]))
    bad = put(queue, tmp_path, "bad", b"1,2,3\n")
    old = put(queue, tmp_path, "old", b"1,2,3,4,5,6,7,8\n", ttl_s=-1)

    async def drain():
        while (claimed := queue.claim("ep", 60)) is not None:
            await w.process("ep", queue, claimed)

    asyncio.run(drain())
    out = open(ok["output"]).read().splitlines()
    assert [int(ln.split(",")[0]) for ln in out] == labels.tolist()
    assert orjson.loads(open(bad["failure"], "rb").read())["ErrorCode"] == "ValidationError"
    expired = orjson.loads(open(old["failure"], "rb").read())
    assert expired["ErrorCode"] == "ExpiredRequest" and "RequestTTLSeconds" in expired["Message"]
    assert [queue.status(r)["state"] for r in ("ok", "bad", "old")] == ["succeeded", "failed", "expired"]
    assert all(queue.status(r)["attempts"] == 1 for r in ("ok", "bad", "old"))
    for outcome in ("succeeded", "failed", "expired"):
        assert w.registry.get_sample_value("ferry_async_requests_total", {"endpoint": "ep", "outcome": outcome}) == 1
    assert queue.backlog("ep") == (0, 0.0)


def test_a_request_taken_again_after_its_result_was_written_is_finished_without_running_again(demo, tmp_path):
    """The worker died between writing the result and finishing the request: the next claim finishes it with
    that result (same file, not rewritten); a request whose earlier attempt wrote nothing runs."""
    queue = SqliteQueue(tmp_path / "q.db")
    w = worker(demo)
    done = put(queue, tmp_path, "done", b"1,2,3,4,5,6,7,8\n")
    todo = put(queue, tmp_path, "todo", b"1,2,3,4,5,6,7,8\n")
    (tmp_path / "out").mkdir()
    with open(done["output"], "w") as f:
        f.write("earlier result\n")
    stamp = os.stat(done["output"]).st_mtime_ns
    for rid in ("done", "todo"):  # claimed by a worker that was killed
        assert queue.claim("ep", lease_s=0.05).id == rid
    time.sleep(0.1)

    async def drain():
        while (claimed := queue.claim("ep", 60)) is not None:
            assert claimed.attempts == 2
            await w.leased("ep", queue, claimed, 60)

    asyncio.run(drain())
    assert open(done["output"]).read() == "earlier result\n" and os.stat(done["output"]).st_mtime_ns == stamp
    assert open(todo["output"]).read().strip() and queue.status("todo")["state"] == "succeeded"
    assert queue.status("done")["state"] == "succeeded"
    assert w.registry.get_sample_value("ferry_async_requests_total", {"endpoint": "ep", "outcome": "succeeded"}) == 2
