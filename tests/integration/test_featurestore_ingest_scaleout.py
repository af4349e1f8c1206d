"""Three `ferry features ingest` workers in one consumer group on a 6-partition topic; one is killed mid-stream and
its partitions move to the others. The online and offline stores end exactly as a single worker leaves them.
A worker with `--until-idle` does not leave while a dead group mate's partitions still hold records."""

from __future__ import annotations

import collections
import os
import random
import select
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


def worker(cfg: Path, data: Path, group: str, until_idle: float = 5) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ferry.cli", "features", "ingest", "-f", str(cfg), "--data-dir",
                             str(data), "--consumer-group", group, "--max-batch", "500", "--until-idle",
                             str(until_idle)],
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
    missing, extra = offline_one - offline_many, offline_many - offline_one
    assert not missing and not extra, (f"the offline logs differ: {sum(missing.values())} records missing, "
                                       f"{sum(extra.values())} extra, e.g. {list(missing)[:3]} {list(extra)[:3]}")
    differ = [i for i in online_one if online_many.get(i) != online_one[i]]
    assert not differ and online_many.keys() == online_one.keys(), f"{len(differ)} ids differ online: {differ[:5]}"


# A group member that takes partitions and never consumes them (paused), printing each assignment it gets.
IDLE_MEMBER = """
import sys
from kafka import ConsumerRebalanceListener, KafkaConsumer
class Pause(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        pass
    def on_partitions_assigned(self, assigned):
        consumer.pause(*assigned)
        print(len(assigned), flush=True)
consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], group_id=sys.argv[2], enable_auto_commit=False,
                         session_timeout_ms=12000, heartbeat_interval_ms=1000)
consumer.subscribe([sys.argv[3]], listener=Pause())
while True:
    consumer.poll(timeout_ms=100)
"""


def held(mate: subprocess.Popen, partitions: int, timeout: float = 60) -> None:
    """Read the member's assignments until it holds `partitions` (an empty one comes first while the topic is new)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if select.select([mate.stdout], [], [], 1)[0] and mate.stdout.readline().strip() == str(partitions):
            return
    raise AssertionError(f"the idle member never held {partitions} partitions")


def test_an_idle_worker_waits_for_a_dead_mates_partitions(tmp_path, kafka_bootstrap):  # noqa: F811
    """The dead member keeps its partition until its 12 s session expires; the worker, idle after 2 s on its own
    partition, must stay for the rebalance and ingest the stranded records too."""
    topic, group, n = f"ferry.test.idle.{uuid.uuid4().hex[:8]}", f"idle-{uuid.uuid4().hex[:8]}", 4000
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1), NewTopic(topic + ".dlq", 1, 1)])
    mate = subprocess.Popen([sys.executable, "-c", IDLE_MEMBER, kafka_bootstrap, group, topic],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        held(mate, 2)
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        sent = collections.Counter()
        for i in range(n):
            producer.send(topic, key=str(i % 97).encode(), value=orjson.dumps({"id": i % 97, "et": 1000.0 + i, "v": i}))
            sent[(i % 97, 1000.0 + i, i)] += 1
        producer.flush()
        producer.close()
        spec = FeatureGroupSpec.model_validate({
            "name": "idle", "record_identifier": "id", "event_time": "et", "topic": topic,
            "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"},
                         {"name": "v", "type": "Integral"}]})
        cfg = tmp_path / "ferry.yaml"
        cfg.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": kafka_bootstrap},
                                       "feature_groups": [spec.model_dump(mode="json")]}))
        ingest = worker(cfg, tmp_path / "data", group, until_idle=2)
        held(mate, 1)  # the worker joined: one partition each
        mate.send_signal(signal.SIGKILL)
        _, err = ingest.communicate(timeout=120)
        assert ingest.returncode == 0, err.decode()[-3000:]
    finally:
        mate.kill()
        admin.delete_topics([topic, topic + ".dlq"])
        admin.close()
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path / "data")), [spec])
    t = store.offline(spec).read(spec, ["id", "et", "v"]).to_pandas()
    store.close()
    assert collections.Counter(zip(t["id"], t["et"], t["v"])) == sent, f"{len(t)} of {n} records ingested"
