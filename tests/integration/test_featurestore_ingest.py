"""Kafka ingestion against the real broker, on both online stores (SQLite and real Redis).

100k records with duplicates, out-of-order event times and 1% bad records; the worker is killed with
SIGKILL mid-stream and restarted as two worker processes. Afterwards: the online store holds exactly the latest record per id, the
DLQ exactly the bad records, each once (identified by their source partition/offset headers), and the offline
store every good message exactly once.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore
from tests.integration.services import kafka_bootstrap, kafka_topic, online_config, redis_url  # noqa: F401

N_MESSAGES = 100_000
N_IDS = 10_000
ROOT = Path(__file__).resolve().parents[2]


def group_spec(name: str, topic: str) -> dict:
    return {"name": name, "record_identifier": "user_id", "event_time": "et", "topic": topic,
            "features": [{"name": "user_id", "type": "Integral"}, {"name": "et", "type": "Fractional"},
                         {"name": "x", "type": "Fractional"}, {"name": "n", "type": "Integral"},
                         {"name": "s", "type": "String"}, {"name": "tags", "type": "String", "collection": "List"}]}


BAD_VALUES = [
    b"{oops", b"[1, 2]", b'"just a string"', orjson.dumps({"et": 1.0, "x": 1.0}),
    orjson.dumps({"user_id": 1, "et": 1.0, "x": "abc"}), orjson.dumps({"user_id": 1, "et": 1.0, "n": 1.5}),
    orjson.dumps({"user_id": 1, "et": 1.0, "bogus": 1}), orjson.dumps({"user_id": 1, "x": 2.0}),
    orjson.dumps({"user_id": 1, "et": 1.0, "tags": "notalist"}), b'{"user_id": 18446744073709551617, "et": 1.0}',
]


def produce(bootstrap: str, topic: str, seed: int = 11):
    """Send the stream; return (latest good record per id, good values multiset, bad (partition, offset) set)."""
    rnd = random.Random(seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks="all")
    sent: list[tuple[bool, dict | None, object]] = []
    history: list[bytes] = []
    used: set[float] = set()
    for i in range(N_MESSAGES):
        uid = rnd.randrange(N_IDS)
        if rnd.random() < 0.01:
            value, rec = rnd.choice(BAD_VALUES), None
        elif history and rnd.random() < 0.05:  # an exact duplicate of an earlier message (a producer retry)
            value = rnd.choice(history)
            rec = orjson.loads(value)
            uid = rec["user_id"]
        else:
            # event times: unique per message, in random order (out of order per id)
            et = 1_767_225_600.0 + rnd.randrange(10**8) * 0.001
            while et in used:
                et += 0.0005
            used.add(et)
            rec = {"user_id": uid, "et": et,
                   "x": rnd.random(), "n": rnd.randrange(-10**12, 10**12), "s": f"s{rnd.randrange(100)}",
                   "tags": [f"t{rnd.randrange(5)}" for _ in range(rnd.randrange(3))]}
            value = orjson.dumps(rec)
            history.append(value)
        fut = producer.send(topic, key=str(uid).encode(), value=value)
        sent.append((rec is not None, rec, fut))
    producer.flush()
    latest: dict[int, dict] = {}
    good: collections.Counter = collections.Counter()
    bad: set[tuple[int, int]] = set()
    for ok, rec, fut in sent:
        md = fut.get(timeout=30)
        if not ok:
            bad.add((md.partition, md.offset))
            continue
        good[(rec["user_id"], rec["et"], rec["x"], rec["n"])] += 1
        cur = latest.get(rec["user_id"])
        if cur is None or rec["et"] > cur["et"]:
            latest[rec["user_id"]] = rec
    producer.close()
    return latest, good, bad


def dlq_sources(bootstrap: str, topic: str) -> list[tuple[int, int]]:
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    tp = TopicPartition(topic + ".dlq", 0)
    c.assign([tp])
    end = c.end_offsets([tp])[tp]
    out = []
    deadline = time.time() + 60
    while c.position(tp) < end and time.time() < deadline:
        for msgs in c.poll(timeout_ms=500).values():
            for m in msgs:
                h = dict(m.headers)
                assert h["ferry.source.topic"].decode() == topic and h["ferry.error"]
                out.append((int(h["ferry.source.partition"]), int(h["ferry.source.offset"])))
    c.close()
    return out


def worker_cmd(cfg: Path, data_dir: Path, online: str, consumer_group: str, until_idle: float | None,
               processes: int = 1) -> list[str]:
    # static membership: the restarted worker 0 (`<group>-0`) takes over the killed one's partitions at once
    instance = consumer_group + "-0" if processes == 1 else consumer_group
    cmd = [sys.executable, "-m", "ferry.cli", "features", "ingest", "-f", str(cfg), "--data-dir", str(data_dir),
           "--online", online, "--consumer-group", consumer_group, "--max-batch", "2000",
           "--instance-id", instance, "--processes", str(processes)]
    return cmd + (["--until-idle", str(until_idle)] if until_idle else [])


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_ingest_exact_after_kill_9(tmp_path, kafka_bootstrap, kafka_topic, redis_url, online):  # noqa: F811
    name = "ing_" + kafka_topic.rsplit(".", 1)[1]
    spec = group_spec(name, kafka_topic)
    cfg = tmp_path / "ferry.yaml"
    cfg.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": kafka_bootstrap}, "redis": {"url": redis_url},
                                   "feature_groups": [spec]}))
    data_dir = tmp_path / "fs"
    t0 = time.time()
    latest, good, bad = produce(kafka_bootstrap, kafka_topic)
    t_produced = time.time()
    assert 800 <= len(bad) <= 1200 and sum(good.values()) + len(bad) == N_MESSAGES

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(worker_cmd(cfg, data_dir, online, name, None), cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    offline_dir = data_dir / "offline" / name / "data"
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None:  # kill once a good part, not all, is written
        if offline_dir.is_dir() and sum(1 for _ in offline_dir.rglob("*.parquet")) >= 60:
            break
        time.sleep(0.02)
    assert first.poll() is None, first.stderr.read().decode()[-3000:]
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)

    # restart as two worker processes of the same consumer group
    second = subprocess.run(worker_cmd(cfg, data_dir, online, name, 3.0, processes=2), cwd=ROOT, env=env, timeout=600,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert second.returncode == 0, second.stderr.decode()[-3000:]
    print(f"produce {t_produced - t0:.1f}s, ingest incl. kill and restart {time.time() - t_produced:.1f}s")

    store = FeatureStore(FeatureStoreSettings(data_dir=str(data_dir), online=online_config(online, redis_url)),
                         [FeatureGroupSpec.model_validate(spec)])
    try:
        ids = [str(i) for i in range(N_IDS)]
        got = store.get_records(name, ids)
        stored = {int(i): g for i, g in zip(ids, got) if g is not None}
        assert set(stored) == set(latest)
        mismatched = [u for u, rec in latest.items()
                      if stored[u].values != rec or stored[u].event_time != rec["et"]]
        assert not mismatched, f"{len(mismatched)} ids differ, e.g. {mismatched[:3]}"

        off = store.offline(store.group(name)).read(store.group(name)).to_pandas()
        assert not off["is_deleted"].any()
        offline_counts = collections.Counter(zip(off["user_id"], off["et"], off["x"], off["n"]))
        assert offline_counts == good, "offline log is not exactly the good messages"
    finally:
        if online == "redis":
            store.online.drop_group(store.group(name))
        store.close()

    dlq = dlq_sources(kafka_bootstrap, kafka_topic)
    assert sorted(dlq) == sorted(bad)  # every bad record exactly once, nothing else, despite the kill
