"""Crash recovery across runs and rebalances, against the real broker.

- Every assignment a worker gets is recovered before it writes, not only its first (once only the first was: a
  rebalance after a kill -9 sent dead letters again).
- The dead-letter bookkeeping step by step: an earlier run dead-letters records and dies before committing them; the
  next owner finds them, writes a record of its own after them and commits part of the way. A third owner recovering
  from that commit must still find the ones past it: the commit's metadata must not point past them.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from featurestore.ingest import worker as worker_module
from featurestore.ingest.dlq import DeadLetters
from featurestore.ingest.worker import IngestWorker
from featurestore.records import RecordError
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore
from tests.integration.services import kafka_bootstrap, kafka_topic  # noqa: F401

ERR = RecordError("x", "not a number")


def until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.1)


def send(bootstrap: str, topic: str, ids: range) -> None:
    """Records with ids `ids`, spread over the topic's 4 partitions."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i in ids:
        producer.send(topic, key=str(i).encode(), value=orjson.dumps({"id": i, "et": 1.0 + i}), partition=i % 4)
    producer.flush()
    producer.close()


def test_a_worker_recovers_every_assignment(tmp_path, kafka_bootstrap, kafka_topic, monkeypatch):  # noqa: F811
    spec = FeatureGroupSpec.model_validate({
        "name": "rc_" + kafka_topic.rsplit(".", 1)[1], "record_identifier": "id", "event_time": "et",
        "topic": kafka_topic, "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"}]})
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path)), [spec])
    recovered: list[list[int]] = []

    def recover(consumer, store, dlq, by_topic, partitions):
        recovered.append(sorted(tp.partition for tp in partitions))
        return real_recover(consumer, store, dlq, by_topic, partitions)

    real_recover = worker_module.recover_partitions
    monkeypatch.setattr(worker_module, "recover_partitions", recover)
    group = "g-" + kafka_topic
    worker = IngestWorker(store, [spec], kafka_bootstrap, consumer_group=group)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    other = None
    try:
        send(kafka_bootstrap, kafka_topic, range(40))
        until(lambda: None not in store.get_records(spec.name, [str(i) for i in range(40)]), 45, "first 40 ingested")
        assert recovered == [[0, 1, 2, 3]]

        # a second member joins: the group rebalances and the worker is assigned part of the partitions again
        other = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
        other.subscribe([kafka_topic])
        until(lambda: other.poll(timeout_ms=200, max_records=1) is not None and other.assignment(), 45,
              "the second member has partitions")
        mine = sorted({0, 1, 2, 3} - {tp.partition for tp in other.assignment()})
        send(kafka_bootstrap, kafka_topic, range(40, 80))
        kept = [str(i) for i in range(40, 80) if i % 4 in mine]
        until(lambda: None not in store.get_records(spec.name, kept), 45, "the worker's share of the next 40")
        assert recovered == [[0, 1, 2, 3], mine]
    finally:
        if other is not None:
            other.close(autocommit=False)
        worker.stop()
        thread.join(timeout=30)
        store.close()
    assert not thread.is_alive()


def message(offset: int) -> SimpleNamespace:
    return SimpleNamespace(offset=offset, key=b"k", value=b"{oops", timestamp=0)


def dead_lettered(bootstrap: str, topic: str) -> list[int]:
    """Source offsets of every record in the DLQ, in DLQ order."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    tp = TopicPartition(topic + ".dlq", 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    out = []
    deadline = time.monotonic() + 30
    while c.position(tp) < end and time.monotonic() < deadline:
        for msgs in c.poll(timeout_ms=200).values():
            out += [int(dict(m.headers)["ferry.source.offset"]) for m in msgs]
    c.close()
    return out


def run_batch(dlq: DeadLetters, tp: TopicPartition, bad: list[int], next_offset: int) -> tuple[list[int], str]:
    """A worker's batch: dead-letter its bad offsets, flush, and the commit's metadata; returns what was sent."""
    sent = [o for o in bad if dlq.send(tp, message(o), ERR)]
    dlq.flush()
    return sent, dlq.checkpoint(tp, next_offset)


def test_recovery_after_a_partial_commit_finds_every_earlier_dead_letter(kafka_bootstrap, kafka_topic):  # noqa: F811
    tp = TopicPartition(kafka_topic, 0)
    runs = [DeadLetters(kafka_bootstrap, f"ferry-test-dlq-{i}") for i in range(3)]
    try:
        # run 0 committed offset 5 having written nothing, then dead-lettered 10, 20 and 30 and died
        _, meta0 = run_batch(runs[0], tp, [], 5)
        assert meta0 == "{}"
        assert run_batch(runs[0], tp, [10, 20, 30], 31)[0] == [10, 20, 30]

        # run 1 takes over from offset 5: its batch 5..15 has bad 7 and 10; 10 is in the DLQ already
        runs[1].recover(kafka_topic, {0: 5}, [meta0])
        sent, meta1 = run_batch(runs[1], tp, [7, 10], 16)
        assert sent == [7]
        # 20 and 30 lie at DLQ offsets 1 and 2, before run 1's own record (3): a recovery from 16 starts at 1
        assert orjson.loads(meta1) == {"0": 1}

        # run 2 takes over from offset 16: 20 and 30 are found, only 25 is new
        runs[2].recover(kafka_topic, {0: 16}, [meta1])
        sent, meta2 = run_batch(runs[2], tp, [20, 25, 30], 31)
        assert sent == [25]
        assert orjson.loads(meta2) == {"0": 5}
    finally:
        for d in runs:
            d.close()
    assert dead_lettered(kafka_bootstrap, kafka_topic) == [10, 20, 30, 7, 25]
