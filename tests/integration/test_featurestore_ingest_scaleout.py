"""Three `ferry features ingest` workers in one consumer group on a 6-partition topic; one is killed mid-stream and
its partitions move to the others. The online and offline stores end exactly as a single worker leaves them."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import yaml
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore
from tests.integration.services import kafka_bootstrap  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
N, N_IDS = 30_000, 3_000


def worker(cfg: Path, data: Path, group: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ferry.cli", "features", "ingest", "-f", str(cfg), "--data-dir",
                             str(data), "--consumer-group", group, "--max-batch", "500", "--until-idle", "5"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def state(data: Path, spec: FeatureGroupSpec):
    store = FeatureStore(FeatureStoreSettings(data_dir=str(data)), [spec])
    online = {i: (g.event_time, g.values["v"]) for i, g in
              enumerate(store.get_records(spec.name, [str(i) for i in range(N_IDS)])) if g is not None}
    t = store.offline(spec).read(spec, ["id", "et", "v"]).to_pandas()
    store.close()
    return online, collections.Counter(zip(t["id"], t["et"], t["v"]))


def test_three_workers_one_killed_end_as_one_worker(tmp_path, kafka_bootstrap):  # noqa: F811
    topic = f"ferry.test.scale.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 6, 1), NewTopic(topic + ".dlq", 1, 1)])
    try:
        rnd = random.Random(3)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=20, batch_size=1 << 19)
        for i in range(N):
            uid = rnd.randrange(N_IDS)
            et = 1000.0 + rnd.randrange(N // 3)  # out of order, with ties
            producer.send(topic, key=str(uid).encode(), value=orjson.dumps({"id": uid, "et": et, "v": i}))
        producer.flush()
        producer.close()
        spec = FeatureGroupSpec.model_validate({
            "name": "scale", "record_identifier": "id", "event_time": "et", "topic": topic,
            "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"},
                         {"name": "v", "type": "Integral"}]})
        cfg = tmp_path / "ferry.yaml"
        cfg.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": kafka_bootstrap},
                                       "feature_groups": [spec.model_dump(mode="json")]}))

        many = tmp_path / "three"
        workers = [worker(cfg, many, "three-" + topic) for _ in range(3)]
        offline = many / "offline" / "scale" / "data"
        deadline = time.time() + 120
        while time.time() < deadline and sum(1 for _ in offline.rglob("*.parquet")) < 20:
            assert all(w.poll() is None for w in workers), [w.stderr.read().decode()[-2000:] for w in workers]
            time.sleep(0.02)
        workers[1].send_signal(signal.SIGKILL)  # mid-stream: its partitions move to the other two
        for w in workers[1:2]:
            w.wait(timeout=30)
        for w in (workers[0], workers[2]):
            _, err = w.communicate(timeout=300)
            assert w.returncode == 0, err.decode()[-3000:]

        one = tmp_path / "one"
        single = worker(cfg, one, "one-" + topic)
        _, err = single.communicate(timeout=300)
        assert single.returncode == 0, err.decode()[-3000:]
    finally:
        admin.delete_topics([topic, topic + ".dlq"])
        admin.close()
    online_many, offline_many = state(many, spec)
    online_one, offline_one = state(one, spec)
    assert sum(offline_one.values()) == N and len(online_one) > 0.9 * N_IDS
    assert offline_many == offline_one, "the offline logs differ"
    differ = [i for i in online_one if online_many.get(i) != online_one[i]]
    assert not differ and online_many.keys() == online_one.keys(), f"{len(differ)} ids differ online: {differ[:5]}"
