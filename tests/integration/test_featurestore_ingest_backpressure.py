"""The ingestion worker pauses while its Redis is unresponsive and resumes without losing a record; metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time

import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client import REGISTRY

from featurestore.ingest import IngestWorker
from featurestore.online.redis import RedisOnlineStore
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore
from tests.integration.services import kafka_bootstrap, kafka_topic  # noqa: F401  (fixtures)


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own (so it can be frozen with SIGSTOP)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            RedisOnlineStore(url).ping()
            break
        except Exception:
            time.sleep(0.05)
    yield proc, url
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    proc.wait(timeout=10)


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_pause_while_store_frozen_then_resume_exact(tmp_path, kafka_bootstrap, kafka_topic, private_redis):  # noqa: F811
    proc, url = private_redis
    name = "bp_" + kafka_topic.rsplit(".", 1)[1]
    spec = FeatureGroupSpec.model_validate({
        "name": name, "record_identifier": "id", "event_time": "et", "topic": kafka_topic,
        "features": [{"name": "id", "type": "String"}, {"name": "et", "type": "Fractional"},
                     {"name": "v", "type": "Integral"}]})
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path / "fs")), [spec],
                         online=RedisOnlineStore(url, timeout=1.0))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)

    def send(lo, hi, bad=0):
        for i in range(lo, hi):
            producer.send(kafka_topic, key=f"k{i % 300}".encode(),
                          value=orjson.dumps({"id": f"k{i % 300}", "et": float(i), "v": i}))
        for _ in range(bad):
            producer.send(kafka_topic, key=b"x", value=b'{"id": "x", "et": "not a number"}')
        producer.flush()

    dlq_before = metric("ferry_features_ingest_dlq_total", group=name)
    send(0, 2000, bad=20)
    worker = IngestWorker(store, [spec], kafka_bootstrap, consumer_group=name, max_batch=500)
    t = threading.Thread(target=worker.run, daemon=True)
    t.start()
    try:
        deadline = time.time() + 60
        while time.time() < deadline and metric("ferry_features_ingest_records_total", group=name,
                                                 outcome="applied") + metric(
                "ferry_features_ingest_records_total", group=name, outcome="stale") < 2000:
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGSTOP)  # the store stops answering
        send(2000, 3000)
        deadline = time.time() + 60
        while time.time() < deadline and metric("ferry_features_ingest_paused", group=name) != 1.0:
            time.sleep(0.05)
        assert metric("ferry_features_ingest_paused", group=name) == 1.0
        time.sleep(1.5)
        os.kill(proc.pid, signal.SIGCONT)
        deadline = time.time() + 60
        while time.time() < deadline and metric("ferry_features_ingest_records_total", group=name,
                                                 outcome="applied") + metric(
                "ferry_features_ingest_records_total", group=name, outcome="stale") < 3000:
            time.sleep(0.1)
        assert metric("ferry_features_ingest_paused", group=name) == 0.0
    finally:
        worker.stop()
        t.join(timeout=30)
        producer.close()
    got = store.get_records(name, [f"k{i}" for i in range(300)])
    assert [g.values["v"] for g in got] == [2700 + i for i in range(300)]  # latest per id, nothing lost
    off = store.offline(spec).read(spec).to_pandas()
    assert sorted(off["v"]) == list(range(3000))  # every good record exactly once
    assert metric("ferry_features_ingest_dlq_total", group=name) - dlq_before == 20
    assert metric("ferry_features_ingest_records_per_second", group=name) > 0
    lags = [metric("ferry_features_ingest_lag", group=name, topic=kafka_topic, partition=str(p)) for p in range(4)]
    assert lags == [0.0] * 4
    assert metric("ferry_features_ingest_freshness_seconds", group=name) > 0
    store.close()
