"""The Kafka queue of asynchronous requests (`async.queue: kafka`, with the deploy file's kafka section).

The gateway puts each accepted request on the endpoint's topic (`async.topic`, default
`ferry.async.<endpoint>`, created with `async.partitions` partitions, default the most worker replicas) and
answers 202 only once the broker has acknowledged it (acks=all): an accepted request is durable.

The endpoint's workers form one consumer group (`<topic>.workers`) and commit a record's offset only after
its result (or error) is in place and the request is finished; offsets are committed in order per partition,
so a record still running holds back the commit of the records after it. After a restart (or a worker
killed, or partitions moved to another replica) the records past the committed offsets are delivered again:
none is lost. A record delivered again whose result is already in place is finished with it, without
running or writing it again (the rule of the SQLite queue): none is completed twice. One limit: when a
rebalance moves a partition while one of its records is running, the new owner may run that record too
(the result is still written whole, by rename); rebalances happen when worker replicas come and go.

The status route cannot ask Kafka about one request: it reads the output and failure locations (Completed,
Failed, Expired) and says Pending otherwise. The backlog (for autoscaling and ferry_async_backlog_requests)
is the consumer group's lag: records not yet committed, waiting or running.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

import orjson

log = logging.getLogger(__name__)


def topic_and_group(spec, endpoint: str) -> tuple[str, str]:
    topic = spec.topic or f"ferry.async.{endpoint}"
    return topic, f"{topic}.workers"


def ensure_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ferry-async-admin")
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


_lag_consumers: dict[tuple[str, str], object] = {}
_lag_lock = threading.Lock()


def consumer_lag(bootstrap: str, topic: str, group: str) -> int:
    """Records of `topic` not yet committed by `group` (0 when the topic does not exist yet)."""
    from kafka import KafkaConsumer, TopicPartition

    with _lag_lock:
        consumer = _lag_consumers.get((bootstrap, group))
        if consumer is None:  # a group member that never subscribes: it reads offsets, it never joins
            consumer = _lag_consumers[(bootstrap, group)] = KafkaConsumer(
                bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, client_id="ferry-async-lag")
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return 0
        tps = [TopicPartition(topic, p) for p in partitions]
        ends, starts = consumer.end_offsets(tps), consumer.beginning_offsets(tps)
        lag = 0
        for tp in tps:
            committed = consumer.committed(tp)
            lag += ends[tp] - (committed if committed is not None else starts[tp])
        return lag


class KafkaQueue:
    """The gateway's side: put (acknowledged by the broker before the 202), status from the locations, backlog
    as the group's lag."""

    def __init__(self, bootstrap: str, topic: str, group: str, partitions: int):
        from kafka import KafkaProducer

        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        ensure_topic(bootstrap, topic, partitions)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, retries=5,
                                      client_id="ferry-async-gateway")

    def put(self, endpoint: str, inference_id: str, doc: str, expires_at: float | None) -> bool:
        record = {"id": inference_id, "endpoint": endpoint, "doc": doc, "accepted_at": time.time(),
                  "expires_at": expires_at}
        self.producer.send(self.topic, key=inference_id.encode(), value=orjson.dumps(record)).get(timeout=30)
        return True

    def status(self, inference_id: str) -> dict | None:
        return None  # the front door reads the locations instead

    def backlog(self, endpoint: str) -> tuple[int, float]:
        return consumer_lag(self.bootstrap, self.topic, self.group), float("nan")

    def close(self) -> None:
        self.producer.close()


@dataclass
class KafkaClaim:
    """A delivered record, in the shape the worker's processing takes (serving.asyncq.sqlite.Claimed)."""

    id: str
    doc: str
    claim: str
    accepted_at: float
    expires_at: float | None
    attempts: int = 2  # a record may be a redelivery: always look for an earlier attempt's result first
    partition: object = None
    offset: int = -1


class Ledger:
    """finish() for Kafka records: the record is acknowledged by the offset commit that follows."""

    def finish(self, claimed, state: str, reason: str | None = None) -> bool:
        return True


@dataclass
class Offsets:
    """Per partition, the offsets delivered and not yet committed, and which of them are done."""

    pending: dict = field(default_factory=dict)  # TopicPartition -> {offset: done}
    lock: threading.Lock = field(default_factory=threading.Lock)  # the worker's loop and the consumer's thread

    def add(self, tp, offset: int) -> None:
        with self.lock:
            self.pending.setdefault(tp, {})[offset] = False

    def done(self, tp, offset: int) -> None:
        with self.lock:
            if offset in self.pending.get(tp, {}):
                self.pending[tp][offset] = True

    def drop(self, tps) -> None:
        with self.lock:
            for tp in tps:
                self.pending.pop(tp, None)

    def committable(self, tps=None) -> dict:
        """{tp: next offset to commit} for each partition whose oldest pending records are done; drops them."""
        from kafka.structs import OffsetAndMetadata

        out = {}
        with self.lock:
            for tp in list(tps if tps is not None else self.pending):
                offsets = self.pending.get(tp, {})
                last = None
                for off in sorted(offsets):
                    if not offsets[off]:
                        break
                    last = off
                    del offsets[off]
                if last is not None:
                    out[tp] = OffsetAndMetadata(last + 1, "", -1)
        return out


class KafkaSource:
    """A worker replica's consumer of an endpoint's topic. All consumer calls are made one at a time (from the
    worker's loop through a thread). Offsets are committed for the partitions the consumer still owns; those
    taken away by a rebalance are dropped from its books (their uncommitted records go to the new owner)."""

    def __init__(self, bootstrap: str, topic: str, group: str, slots: int, max_poll_interval_ms: int,
                 loop: asyncio.AbstractEventLoop | None = None):
        from kafka import KafkaConsumer

        self.offsets = Offsets()
        self.running: dict = {}  # (tp, offset) -> asyncio.Task
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                      auto_offset_reset="earliest", max_poll_records=slots,
                                      max_poll_interval_ms=max_poll_interval_ms, client_id="ferry-async-worker")
        self.consumer.subscribe([topic])

    def poll(self, free: int) -> list[KafkaClaim]:
        """Up to `free` records (waiting up to half a second), each recorded as pending."""
        batches = self.consumer.poll(timeout_ms=500, max_records=max(1, free))
        out = []
        for tp, records in batches.items():
            for r in records:
                self.offsets.add(tp, r.offset)
                try:
                    rec = orjson.loads(r.value)
                    out.append(KafkaClaim(rec["id"], rec["doc"], f"{tp.partition}:{r.offset}", rec["accepted_at"],
                                          rec.get("expires_at"), partition=tp, offset=r.offset))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    log.error("async queue %s: record %d/%d is not a Ferry request; skipped", tp.topic,
                              tp.partition, r.offset)
                    self.offsets.done(tp, r.offset)
        return out

    def commit(self) -> None:
        """Commit each owned partition's finished prefix of records."""
        owned = self.consumer.assignment()
        self.offsets.drop([tp for tp in list(self.offsets.pending) if tp not in owned])
        offsets = self.offsets.committable()
        if offsets:
            self.consumer.commit(offsets)

    def close(self, commit: bool = True) -> None:
        """Leave the group (committing what is finished, unless a test simulates a crash)."""
        if commit:
            try:
                self.commit()
            except Exception:  # noqa: BLE001 - uncommitted records are delivered again: nothing is lost
                log.warning("async queue: final commit failed", exc_info=True)
        self.consumer.close(autocommit=False)
