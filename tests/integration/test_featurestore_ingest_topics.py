"""A worker started before anyone produced creates its topic and DLQ topic, then ingests what arrives."""

from __future__ import annotations

import threading
import time
import uuid

import orjson
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient

from featurestore.ingest import IngestWorker
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore
from tests.integration.services import kafka_bootstrap  # noqa: F401  (fixture)


def test_worker_creates_missing_topics(tmp_path, kafka_bootstrap):  # noqa: F811
    topic = f"ferry.test.new.{uuid.uuid4().hex[:8]}"
    spec = FeatureGroupSpec.model_validate({
        "name": "fresh", "record_identifier": "id", "event_time": "et", "topic": topic,
        "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"}]})
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path)), [spec])
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    worker = IngestWorker(store, [spec], kafka_bootstrap, consumer_group="g-" + topic)
    t = threading.Thread(target=worker.run, daemon=True)
    t.start()
    try:
        deadline = time.time() + 20  # the admin client's metadata may trail the creation briefly
        while time.time() < deadline and not {topic, topic + ".dlq"} <= set(admin.list_topics()):
            time.sleep(0.2)
        assert {topic, topic + ".dlq"} <= set(admin.list_topics())
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for i in range(10):
            producer.send(topic, key=str(i).encode(), value=orjson.dumps({"id": i, "et": 1.0}))
        producer.flush()
        producer.close()
        deadline = time.time() + 120
        while time.time() < deadline and None in store.get_records("fresh", [str(i) for i in range(10)]):
            time.sleep(0.1)
        assert None not in store.get_records("fresh", [str(i) for i in range(10)])
    finally:
        worker.stop()
        t.join(timeout=30)
        admin.delete_topics([topic, topic + ".dlq"])
        admin.close()
