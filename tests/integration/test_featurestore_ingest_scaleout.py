"""Three `ferry features ingest` workers in one consumer group on a 6-partition topic; one is killed mid-stream and
its partitions move to the others. The online and offline stores end exactly as a single worker leaves them.
A worker with `--until-idle` does not leave while a dead group mate's partitions still hold records, and a commit
that lands after a member's assignment does not make it write records twice."""

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
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata, TopicPartition

from featurestore.ingest import IngestWorker
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore
from tests.integration.services import kafka_bootstrap  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
N, N_IDS = 30_000, 3_000


def worker(cfg: Path, data: Path, group: str, until_idle: float = 5) -> subprocess.Popen:
    """An ingest worker whose log goes to a file beside its data (a pipe nobody reads could fill and stall it)."""
    data.mkdir(parents=True, exist_ok=True)
    with open(data / f"worker-{uuid.uuid4().hex[:6]}.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ferry.cli", "features", "ingest", "-f", str(cfg),
                                 "--data-dir", str(data), "--consumer-group", group, "--max-batch", "500",
                                 "--until-idle", str(until_idle)],
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                                stderr=log)
    proc.log = Path(log.name)
    return proc


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for a worker; its log."""
    proc.wait(timeout=timeout)
    return proc.log.read_text()


def small_spec(name: str, topic: str) -> FeatureGroupSpec:
    """A group of integer ids, float event times and one integer value `v`, fed by `topic`."""
    return FeatureGroupSpec.model_validate({
        "name": name, "record_identifier": "id", "event_time": "et", "topic": topic,
        "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"},
                     {"name": "v", "type": "Integral"}]})


def config(folder: Path, bootstrap: str, spec: FeatureGroupSpec) -> Path:
    """A ferry.yaml with the broker and the one group, for `ferry features ingest -f`."""
    cfg = folder / "ferry.yaml"
    cfg.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": bootstrap},
                                   "feature_groups": [spec.model_dump(mode="json")]}))
    return cfg


def state(data: Path, spec: FeatureGroupSpec):
    store = FeatureStore(FeatureStoreSettings(data_dir=str(data)), [spec])
    online = {i: (g.event_time, g.values["v"]) for i, g in
              enumerate(store.get_records(spec.name, [str(i) for i in range(N_IDS)])) if g is not None}
    t = store.offline(spec).read(spec, ["id", "et", "v"]).to_pandas()
    store.close()
    return online, collections.Counter(zip(t["id"], t["et"], t["v"]))


def story(logs: list[str]) -> str:
    """The workers' own log lines (assignments, recoveries, warnings), for a failure's message."""
    return "\n".join(f"worker {i}: {line}" for i, log in enumerate(logs) for line in log.splitlines()
                     if " featurestore." in line or "WARNING" in line)


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
        spec = small_spec("scale", topic)
        cfg = config(tmp_path, kafka_bootstrap, spec)

        many = tmp_path / "three"
        workers = [worker(cfg, many, "three-" + topic) for _ in range(3)]
        offline = many / "offline" / "scale" / "data"
        deadline = time.time() + 120
        while time.time() < deadline and sum(1 for _ in offline.rglob("*.parquet")) < 20:
            assert all(w.poll() is None for w in workers), [w.log.read_text()[-2000:] for w in workers]
            time.sleep(0.02)
        workers[1].send_signal(signal.SIGKILL)  # mid-stream: its partitions move to the other two
        logs = [finish(w) for w in workers]
        for w, log in zip((workers[0], workers[2]), (logs[0], logs[2])):
            assert w.returncode == 0, log[-3000:]

        one = tmp_path / "one"
        single = worker(cfg, one, "one-" + topic)
        log = finish(single)
        assert single.returncode == 0, log[-3000:]
    finally:
        admin.delete_topics([topic, topic + ".dlq"])
        admin.close()
    online_many, offline_many = state(many, spec)
    online_one, offline_one = state(one, spec)
    assert sum(offline_one.values()) == N and len(online_one) > 0.9 * N_IDS
    missing, extra = offline_one - offline_many, offline_many - offline_one
    assert not missing and not extra, (f"the offline logs differ: {sum(missing.values())} records missing, "
                                       f"{sum(extra.values())} extra, e.g. {list(missing)[:3]} {list(extra)[:3]}; "
                                       f"the workers said:\n{story(logs)}")
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
        spec = small_spec("idle", topic)
        cfg = config(tmp_path, kafka_bootstrap, spec)
        ingest = worker(cfg, tmp_path / "data", group, until_idle=2)
        held(mate, 1)  # the worker joined: one partition each
        mate.send_signal(signal.SIGKILL)
        log = finish(ingest, timeout=120)
        assert ingest.returncode == 0, log[-3000:]
    finally:
        mate.kill()
        admin.delete_topics([topic, topic + ".dlq"])
        admin.close()
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path / "data")), [spec])
    t = store.offline(spec).read(spec, ["id", "et", "v"]).to_pandas()
    store.close()
    assert collections.Counter(zip(t["id"], t["et"], t["v"])) == sent, f"{len(t)} of {n} records ingested"


def test_a_commit_landing_after_the_assignment_writes_nothing_twice(tmp_path, kafka_bootstrap):  # noqa: F811
    """An earlier owner's commit can land after this member's position was set at assignment. Recovery cleans up
    from the committed offset it reads; the replay must start there too, or the records in between are written
    twice. Set up: a first run wrote [0, 500) and [500, 1000) and the group's offset is back at 0 (as if its commits
    were lost); the next member is assigned at 0, then a commit of 500 lands."""
    topic, group, n = f"ferry.test.late.{uuid.uuid4().hex[:8]}", f"late-{uuid.uuid4().hex[:8]}", 1000
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1), NewTopic(topic + ".dlq", 1, 1)])
    tp = TopicPartition(topic, 0)
    spec = small_spec("late", topic)
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path)), [spec])
    try:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for i in range(n):
            producer.send(topic, value=orjson.dumps({"id": i % 50, "et": 1000.0 + i, "v": i}))
        producer.flush()
        producer.close()
        IngestWorker(store, [spec], kafka_bootstrap, consumer_group=group, max_batch=500).run(until_idle=1)
        assert len(store.offline(spec).files(spec)) == 2
        rewind = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
        rewind.assign([tp])
        rewind.commit({tp: OffsetAndMetadata(0, "", -1)})  # the group is empty: a plain commit resets it
        rewind.close()

        late = IngestWorker(store, [spec], kafka_bootstrap, consumer_group=group, max_batch=300)  # other file names
        deadline = time.time() + 60
        while not late.consumer.assignment() and time.time() < deadline:
            late.consumer.poll(timeout_ms=200)
        assert late.consumer.assignment() == {tp}
        late.consumer.commit({tp: OffsetAndMetadata(500, "", -1)})  # the earlier owner's late commit
        late.consumer.seek(tp, 0)  # the position this member got at assignment
        late.run(until_idle=1)
        t = store.offline(spec).read(spec, ["id", "et", "v"]).to_pandas()
    finally:
        store.close()
        admin.delete_topics([topic, topic + ".dlq"])
        admin.close()
    written = collections.Counter(t["v"])
    assert sorted(written) == list(range(n)) and max(written.values()) == 1, (
        f"{sum(c > 1 for c in written.values())} records written twice")
