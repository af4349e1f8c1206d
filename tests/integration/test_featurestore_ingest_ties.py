"""Equal event times inside one Kafka micro-batch: the online store and the training view pick the same record
(the first written) for every id, on both online stores."""

from __future__ import annotations

import random

import orjson
import pandas as pd
import pytest
from kafka import KafkaProducer

from featurestore.ingest import IngestWorker
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore
from featurestore.training import point_in_time_join
from tests.integration.services import kafka_bootstrap, kafka_topic, online_config, redis_url  # noqa: F401

N_IDS, VERSIONS = 300, 4


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_ties_in_one_batch_agree_online_and_offline(tmp_path, kafka_bootstrap, kafka_topic, redis_url, online):  # noqa: F811
    name = "ties_" + kafka_topic.rsplit(".", 1)[1]
    spec = FeatureGroupSpec.model_validate({
        "name": name, "record_identifier": "id", "event_time": "et", "topic": kafka_topic,
        "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"},
                     {"name": "v", "type": "Integral"}]})
    rnd = random.Random(5)
    sends = [(i, v) for i in range(N_IDS) for v in range(VERSIONS)]
    rnd.shuffle(sends)  # versions of an id interleave with other ids; all versions of an id share its event time
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=50, batch_size=1 << 20)
    first: dict[int, int] = {}
    for i, v in sends:
        value = 1000 * v + i
        first.setdefault(i, value)
        producer.send(kafka_topic, key=str(i).encode(), value=orjson.dumps({"id": i, "et": 100.0 + i % 5, "v": value}))
    producer.flush()
    producer.close()

    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path), online=online_config(online, redis_url)), [spec])
    try:
        worker = IngestWorker(store, [spec], kafka_bootstrap, consumer_group=name, max_batch=10_000)
        worker.run(until_idle=2.0)
        files = store.offline(spec).files(spec)
        assert len(files) <= 4 * 5  # one micro-batch per partition (a file per partition and event-time hour)
        got = store.get_records(name, [str(i) for i in range(N_IDS)])
        online_v = {i: g.values["v"] for i, g in enumerate(got)}
        train = point_in_time_join(store.offline(spec), spec,
                                   pd.DataFrame({"id": range(N_IDS), "event_timestamp": 1000.0}))
        offline_v = dict(zip(train["id"], train["v"]))
        assert online_v == first  # the first written wins online
        differ = [i for i in range(N_IDS) if offline_v[i] != online_v[i]]
        assert not differ, f"{len(differ)} ids differ between the training view and the online store: {differ[:5]}"
        assert len({v // 1000 for v in first.values()}) == VERSIONS
    finally:
        if online == "redis":
            store.online.drop_group(spec)
        store.close()
