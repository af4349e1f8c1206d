"""The ingest watchdog on a real broker: workers started before their topic exists always ingest; a worker whose
consumer stopped fetching rejoins and catches up; with no rejoins left it stops with IngestStalled (exit code 2)."""

from __future__ import annotations

import threading
import time
import uuid

import orjson
import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from prometheus_client import REGISTRY

from featurestore.ingest import IngestStalled, IngestWorker, supervisor
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore
from tests.integration.services import kafka_bootstrap, kafka_topic  # noqa: F401  (fixtures)

STARTS = 12  # workers started before their topic exists


def spec_for(topic: str) -> FeatureGroupSpec:
    return FeatureGroupSpec.model_validate({
        "name": "wd_" + topic.rsplit(".", 1)[1], "record_identifier": "id", "event_time": "et", "topic": topic,
        "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"}]})


def produce(bootstrap: str, topic: str, n: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(n):
        producer.send(topic, key=str(i).encode(), value=orjson.dumps({"id": i, "et": 1.0 + i}))
    producer.flush()
    producer.close()


def wait_ingested(store: FeatureStore, name: str, n: int, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if None not in store.get_records(name, [str(i) for i in range(n)]):
            return time.monotonic() - t0
        time.sleep(0.1)
    missing = sum(g is None for g in store.get_records(name, [str(i) for i in range(n)]))
    pytest.fail(f"{missing} of {n} records not ingested after {timeout}s")


def rejoins(group: str) -> float:
    return REGISTRY.get_sample_value("ferry_features_ingest_watchdog_rejoins_total", {"consumer_group": group}) or 0.0


def test_workers_started_before_their_topic_exists(tmp_path, kafka_bootstrap):  # noqa: F811
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    seconds, rejoined = [], 0.0
    try:
        for i in range(STARTS):
            topic = f"ferry.test.wd.{uuid.uuid4().hex[:8]}"
            spec = spec_for(topic)
            store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path / str(i))), [spec])
            worker = IngestWorker(store, [spec], kafka_bootstrap, consumer_group="g-" + topic, stall_timeout_s=5.0)
            t = threading.Thread(target=worker.run, daemon=True)
            t.start()
            try:
                produce(kafka_bootstrap, topic, 20)
                seconds.append(wait_ingested(store, spec.name, 20, timeout=45))
                rejoined += rejoins("g-" + topic)
            finally:
                worker.stop()
                t.join(timeout=30)
                admin.delete_topics([topic, topic + ".dlq"])
            assert not t.is_alive()
    finally:
        admin.close()
    print(f"{STARTS} starts before the topic existed: all ingested, slowest {max(seconds):.1f}s, "
          f"watchdog rejoins {rejoined:.0f}")


def stuck_worker(store, spec, bootstrap, **kw) -> IngestWorker:
    """A worker whose consumer has its partitions but fetches nothing (paused behind the worker's back)."""
    worker = IngestWorker(store, [spec], bootstrap, consumer_group="g-" + spec.kafka_topic, **kw)
    deadline = time.time() + 30
    while not worker.consumer.assignment() and time.time() < deadline:
        assert not worker.consumer.poll(timeout_ms=200)  # the topic is still empty: nothing is lost here
    assert worker.consumer.assignment()
    worker.consumer.pause(*worker.consumer.assignment())
    return worker


def test_watchdog_rejoins_a_worker_that_stopped_fetching(tmp_path, kafka_bootstrap, kafka_topic):  # noqa: F811
    spec = spec_for(kafka_topic)
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path)), [spec])
    worker = stuck_worker(store, spec, kafka_bootstrap, stall_timeout_s=3.0)
    produce(kafka_bootstrap, kafka_topic, 50)
    before = rejoins("g-" + kafka_topic)
    t = threading.Thread(target=worker.run, daemon=True)
    t.start()
    try:
        took = wait_ingested(store, spec.name, 50, timeout=60)
    finally:
        worker.stop()
        t.join(timeout=30)
    assert rejoins("g-" + kafka_topic) - before >= 1
    assert took >= 3.0  # it really was stuck until the watchdog acted
    off = store.offline(spec).read(spec).to_pandas()
    assert sorted(off["id"]) == list(range(50))  # each record once


def test_watchdog_gives_up_with_a_clear_error(tmp_path, kafka_bootstrap, kafka_topic, monkeypatch):  # noqa: F811
    spec = spec_for(kafka_topic)
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path)), [spec])
    worker = stuck_worker(store, spec, kafka_bootstrap, stall_timeout_s=2.0, max_rejoins=0)
    produce(kafka_bootstrap, kafka_topic, 10)
    t0 = time.monotonic()
    with pytest.raises(IngestStalled, match=r"has committed nothing for \d+s while records wait \(.*\[\d\]: \d+"):
        worker.run()
    assert time.monotonic() - t0 < 30
    stalled = REGISTRY.get_sample_value("ferry_features_ingest_stalled_seconds",
                                        {"consumer_group": worker.consumer_group})
    assert stalled >= 2.0

    # the process entry point turns it into exit code 2 (what an orchestrator sees)
    def stall(self, until_idle=None):
        raise IngestStalled("test stall")

    monkeypatch.setattr(IngestWorker, "run", stall)
    assert supervisor.run_ingest(FeatureStoreSettings(data_dir=str(tmp_path), kafka_bootstrap_servers=kafka_bootstrap),
                                 [spec], consumer_group="g2-" + kafka_topic) == supervisor.EXIT_STALLED
