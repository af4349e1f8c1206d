"""The dashboards as a person sees them: a real Prometheus server scrapes the running Ferry (traffic, errors,
capture, batching, replicas), the monitor's gauges after real executions of all four monitor types, and a
feature-store ingest worker reading a real Kafka topic plus online reads, asynchronous invocations, a serverless
variant's cold start and throttling, and a rollout; `ferry dashboards preview` draws every panel of the four
dashboards from it and headless Chromium screenshots each page. A panel with no data fails the test.

Set FERRY_SCREENSHOTS=docs/images to refresh the screenshots committed under docs/.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from kafka import KafkaProducer
from prometheus_client import start_http_server

from featurestore.ingest import IngestWorker
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore
from monitor.runner import run_once
from tests.integration.conftest import free_port
from tests.integration.services import kafka_bootstrap, kafka_topic  # noqa: F401  (fixtures)
from tests.monitor_world import NOW, all_four, build_world
from tests.prometheus_server import prometheus_server

ROOT = Path(__file__).resolve().parents[2]
BOARDS = ["ferry-overview", "ferry-model-monitor", "ferry-feature-store", "ferry-async-rollouts"]
ROW = "35,50000,0.3,60,3,10000,1,0"


def _traffic(ferry_url: str, seconds: float) -> None:
    """Bounded mixed traffic: SageMaker CSV and V2 JSON, a batched endpoint, bad requests (400), model failures
    (424)."""
    v2 = {"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": [float(x) for x in ROW.split(",")]}]}
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=30) as c:
        while time.monotonic() < deadline:
            for _ in range(5):
                c.post(f"{ferry_url}/endpoints/credit-risk/invocations", content=ROW, headers={"content-type": "text/csv"})
                c.post(f"{ferry_url}/endpoints/batched/invocations", content=ROW, headers={"content-type": "text/csv"})
            c.post(f"{ferry_url}/v2/models/credit-risk/infer", json=v2)
            c.post(f"{ferry_url}/endpoints/credit-risk/invocations", content="1,2", headers={"content-type": "text/csv"})
            c.post(f"{ferry_url}/endpoints/fragile/invocations", content=json.dumps({"instances": [[1, 2, 3, 4]]}),
                   headers={"content-type": "application/json"})
            time.sleep(0.2)


def _endpoint_kinds(ferry_url: str, demo_dir: Path, tmp_path: Path) -> None:
    """The async/serverless/rollouts dashboard's producers: a burst on the cold serverless variant (a cold start
    and 429 throttles), asynchronous invocations, and an all-at-once rollout of the `rolling` endpoint."""
    inbox = demo_dir / "async-in"
    inbox.mkdir(exist_ok=True)
    (inbox / "preview.csv").write_text("\n".join([ROW] * 20))

    async def burst(n: int) -> list[int]:
        async with httpx.AsyncClient(timeout=180) as client:
            answers = await asyncio.gather(*(client.post(f"{ferry_url}/endpoints/serverless/invocations", content=ROW,
                                                         headers={"content-type": "text/csv"}) for _ in range(n)))
        return [r.status_code for r in answers]

    assert sorted(set(asyncio.run(burst(6)))) == [200, 429]
    with httpx.Client(timeout=30) as c:
        for i in range(6):
            r = c.post(f"{ferry_url}/endpoints/async/async-invocations", headers={
                "content-type": "text/csv", "x-amzn-sagemaker-inputlocation": str(inbox / "preview.csv")})
            assert r.status_code == 202, r.text
    green = tmp_path / "green.yaml"
    green.write_text(yaml.safe_dump({"models": [{"name": "green-model", "path": str(demo_dir / "model.onnx")}],
                                     "endpoints": [{"name": "rolling", "variants": [
                                         {"name": "PreviewGreen", "model": "green-model"}]}]}))
    r = subprocess.run([sys.executable, "-m", "ferry.cli", "rollout", "rolling", "--to", str(green), "--url", ferry_url,
                        "--strategy", "all-at-once", "--wait-interval", "1", "--termination-wait", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def _monitor_executions(tmp_path: Path) -> None:
    """The four monitor types run on the drifted window: their gauges land on this process's registry."""
    (tmp_path / "monitor-world").mkdir()
    world = build_world(tmp_path / "monitor-world")
    for spec in all_four(world):
        ex = run_once(spec, NOW)
        assert ex.status in ("Completed", "CompletedWithViolations"), (spec.name, ex.failure_reason)


def _ingest(tmp_path: Path, bootstrap: str, topic: str):
    """An ingest worker on a real Kafka topic (good records and a few bad ones for the DLQ), and online reads."""
    name = "preview_" + topic.rsplit(".", 1)[1]
    spec = FeatureGroupSpec.model_validate({
        "name": name, "record_identifier": "id", "event_time": "et", "topic": topic,
        "features": [{"name": "id", "type": "String"}, {"name": "et", "type": "Fractional"},
                     {"name": "v", "type": "Integral"}]})
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path / "fs")), [spec])
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    worker = IngestWorker(store, [spec], bootstrap, consumer_group=name, max_batch=200)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()

    def produce(seconds: float):
        deadline, i = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            for _ in range(50):
                producer.send(topic, key=f"k{i % 100}".encode(),
                              value=orjson.dumps({"id": f"k{i % 100}", "et": time.time(), "v": i}))
                i += 1
            producer.send(topic, key=b"x", value=b'{"id": "x", "et": "not a number"}')
            producer.flush()
            for k in range(0, 100, 10):
                store.get_record(name, f"k{k}")
            time.sleep(0.2)

    def close():
        worker.stop()
        thread.join(timeout=30)
        producer.close()
        store.close()

    return produce, close


def test_every_panel_draws_from_prometheus(ferry_url, demo_dir, tmp_path, kafka_bootstrap, kafka_topic):  # noqa: F811
    if shutil.which("chromium") is None:
        pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package", pytrace=False)
    _monitor_executions(tmp_path)
    exporter_port = free_port()
    server, _ = start_http_server(exporter_port, addr="127.0.0.1")  # this process: monitor and feature store
    produce, close_ingest = _ingest(tmp_path, kafka_bootstrap, kafka_topic)
    rules = sorted((ROOT / "dashboards" / "alerts").glob("*.yml"))
    try:
        with prometheus_server(tmp_path / "prom", {"ferry": [ferry_url.removeprefix("http://")],
                                                   "ferry-test-process": [f"127.0.0.1:{exporter_port}"]},
                               rules) as prom:
            feeder = threading.Thread(target=produce, args=(25,), daemon=True)
            feeder.start()
            prom.wait_for(lambda: prom.value('up{job="ferry"}'), 30, "a first scrape of Ferry")
            _endpoint_kinds(ferry_url, demo_dir, tmp_path)
            _traffic(ferry_url, 25)
            feeder.join(timeout=60)
            prom.wait_for(lambda: prom.value("sum(ferry_features_ingest_records_total)"), 30, "ingested records")
            for what, expr in [  # counters exported at 0 before their first event: that event is an increase
                    ("the rollout", 'sum(increase(ferry_rollouts_total{endpoint="rolling",outcome="completed"}[2m]))'),
                    ("the throttles", 'sum(increase(ferry_invocations_total{endpoint="serverless",code="429"}[2m]))')]:
                prom.wait_for(lambda: prom.value(expr), 30, f"{what} seen as an increase")
            time.sleep(3)  # a last scrape of everything sent
            out = tmp_path / "preview"
            cmd = [sys.executable, "-m", "ferry.cli", "dashboards", "preview", "--prometheus", prom.url,
                   "--out", str(out), "--minutes", "2", "--rate-interval", "10s", "--screenshot"]
            cmd += [a for b in BOARDS for a in ("--dashboard", b)]
            run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    finally:
        close_ingest()
        server.shutdown()
    assert run.returncode == 0, run.stdout + run.stderr  # exit 1 names the panels without data
    for uid in BOARDS:
        png = out / f"{uid}.png"
        page = (out / f"{uid}.html").read_text()
        assert "No data" not in page
        assert page.count('class="panel"') >= 6 and "Plotly.newPlot" in page
        head = png.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(head[16:20], "big") == 1600
        assert png.stat().st_size > 50_000, "a screenshot of drawn charts, not a blank page"
    if os.environ.get("FERRY_SCREENSHOTS"):
        dest = ROOT / os.environ["FERRY_SCREENSHOTS"]
        dest.mkdir(parents=True, exist_ok=True)
        for uid in BOARDS:
            shutil.copy(out / f"{uid}.png", dest / f"{uid}.png")
