"""Serving faults with figures: a model replica killed under load (failed requests, recovery seconds), and the
Kafka broker restarted while requests are captured (records lost: 0). The broker is a private one on its own
ports (the shared Kafka is never restarted). The async kill -9 fault waits for async endpoints."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter

import httpx

from ferry.demo import make_credit_data, model_matrix
from serving.adapters import sagemaker
from serving.capture import make_sink
from serving.dataplane import DataPlane
from serving.endpoint import Endpoint, EndpointCapture
from serving.spec import DataCaptureSpec, ModelSpec
from serving.variants import ModelRunner
from tests.integration.test_capture_kafka import _consume, _metric, private_broker  # noqa: F401 - a fixture
from tests.unit.test_dataplane import http_request

ROW = "35,52000,0.25,120,4,9000,0,1"


def replica_actors(deployment: str) -> set[tuple[str, str]]:
    """(namespace, name) of the deployment's replica actors (a restarted replica has a new name)."""
    import ray

    return {(a["namespace"], a["name"]) for a in ray.util.list_named_actors(all_namespaces=True)
            if f"#{deployment}#" in a["name"]}


def test_a_killed_model_replica_under_load(ferry_url):
    """The credit-risk endpoint's `Deployed` variant runs on its own replica: kill it while 4 clients call it."""
    import ray

    url = f"{ferry_url}/endpoints/credit-risk/invocations"
    headers = {"content-type": "text/csv", "x-amzn-sagemaker-target-variant": "Deployed"}
    before = replica_actors("credit-risk.Deployed")
    assert len(before) == 1, before
    log: list[tuple[float, float, int, str]] = []  # (sent, answered, status, x-amzn-ErrorType)
    stop = threading.Event()

    def client():
        with httpx.Client(timeout=60) as c:
            deadline = time.monotonic() + 120  # bounded
            while not stop.is_set() and time.monotonic() < deadline:
                sent = time.monotonic()
                r = c.post(url, content=ROW, headers=headers)
                log.append((sent, time.monotonic(), r.status_code, r.headers.get("x-amzn-errortype", "")))
                time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        killed_at = time.monotonic()
        for namespace, name in before:
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until 40 requests sent after the kill were answered 200 in < 1 s
            recent = [(a - b, st) for b, a, st, _ in log[-40:] if b > killed_at]
            if len(recent) == 40 and all(st == 200 and took < 1 for took, st in recent):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(90)
    after = [e for e in log if e[1] >= killed_at]  # in flight at the kill or sent after it
    failed = [e for e in after if e[2] != 200]
    kinds = Counter((st, err) for _, _, st, err in failed)
    assert all(st in (503, 429) for st, _ in kinds), kinds  # retryable, never a 500 nor a 4xx blaming the client
    slow = [e for e in after if e[1] - e[0] > 1.0]
    normal = sorted(a - b for b, a, _, _ in log if a < killed_at)
    recovery = max((a for _, a, _, _ in failed + slow), default=killed_at) - killed_at
    new = replica_actors("credit-risk.Deployed") - before
    print(f"model replica killed under 4 clients: {len(after)} requests in flight or sent after the kill, "
          f"{len(failed)} failed {dict(kinds)}, {len(slow)} waited over 1 s (longest "
          f"{max((a - b for b, a, _, _ in after), default=0):.2f} s; median before {normal[len(normal) // 2] * 1000:.1f} ms); "
          f"normal service {recovery:.2f} s after the kill; new replica started: {bool(new)}")
    assert recovery < 60 and new, "Ray Serve did not bring the variant back"
    assert all(st == 200 for _, a, st, _ in log if a > killed_at + recovery)


def test_kafka_broker_restart_during_capture_loses_nothing(private_broker, tmp_path):
    """Requests through the data plane, captured at 100 % to a private broker stopped and restarted mid-load."""
    from ferry.demo import write_demo

    write_demo(tmp_path / "demo", n_rows=200)
    topic, ep = "ferry.capture.fault", f"fault-{uuid.uuid4().hex[:6]}"
    spec = DataCaptureSpec(enabled=True, sampling_percentage=100, destination=f"kafka://{topic}")
    sink = make_sink(spec, ep, private_broker.bootstrap, retry_for_s=180, send_timeout_s=3)
    runner = ModelRunner(ModelSpec(name="m", path=str(tmp_path / "demo" / "model.onnx")), "AllTraffic")
    plane = DataPlane({ep: Endpoint(ep, {"AllTraffic": runner}, {"AllTraffic": 1.0}, EndpointCapture(spec, sink))},
                      1_000_000, None)
    rows = [",".join(map(str, r)) for r in model_matrix(make_credit_data(50, seed=5))]
    statuses: Counter = Counter()
    stop = threading.Event()

    def load():
        async def go():
            i = 0
            while not stop.is_set() and i < 20_000:  # bounded
                r = await sagemaker.invoke(plane, http_request(f"/endpoints/{ep}/invocations", rows[i % 50].encode(),
                                                               {"content-type": "text/csv"}), ep)
                statuses[r.status_code] += 1
                i += 1
                await asyncio.sleep(0.002)
        asyncio.run(go())

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(2)
        t0 = time.monotonic()
        private_broker.stop()
        stopped = time.monotonic()
        time.sleep(2)
        private_broker.start()
        restarted = time.monotonic()
        time.sleep(2)
    finally:
        stop.set()
        thread.join(60)
    sent = sum(statuses.values())
    sink.close(timeout_s=150)
    caught_up = time.monotonic()
    got = _consume(private_broker.bootstrap, topic, timeout_s=90)
    ids = Counter(r["eventMetadata"]["eventId"] for r in got)
    labels = {"endpoint": ep, "sink": "kafka"}
    dropped = sum(_metric("ferry_capture_dropped_records_total", reason=x, **labels)
                  for x in ("queue_full", "retries_exhausted", "closed", "unencodable"))
    print(f"Kafka broker restart during capture: {sent} requests ({dict(statuses)}), broker stop took "
          f"{stopped - t0:.1f} s, down 2 s, start {restarted - stopped - 2:.1f} s; {len(ids)} distinct records "
          f"captured, lost {sent - len(ids)}, written twice {sum(ids.values()) - len(ids)}, dropped {dropped:.0f}; "
          f"the sink had written everything {caught_up - restarted:.1f} s after the broker was back")
    assert statuses == Counter({200: sent}) and sent > 1000
    assert len(ids) == sent and dropped == 0
