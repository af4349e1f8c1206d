"""The Kafka queue of asynchronous requests (`async.queue: kafka`, with the deploy file's kafka section).

The gateway puts each accepted request on the endpoint's topic (`async.topic`, default
`ferry.async.<endpoint>`, created with `async.partitions` partitions, default the most worker replicas),
keyed by its inference id, and answers 202 only once the broker has acknowledged it (acks=all): an accepted
request is durable.

The endpoint's workers form one consumer group (`<topic>.workers`) and commit a record's offset only after
its result (or error) is in place and the request is finished; offsets are committed in order per partition,
so a record still running holds back the commit of the records after it. After a restart (or a worker
killed) the records past the committed offsets are delivered again: none is lost. A record delivered again
whose result is already in place is finished with it, without running or writing it again (the rule of the
SQLite queue): none is completed twice. A rebalance (worker replicas coming and going) hands a partition
over only once the records of it that its owner is running are finished and committed (`Handover`, a
rebalance listener): the new owner starts after them and never runs one of them again.

What is pending is read from Kafka itself (`PendingView`): the records of the topic past the group's
committed offsets. The status route says Completed / Failed / Expired once the output or failure is in
place, Pending for a request among those records (queued or running), and 404 for an id the queue does not
hold (unknown, or finished and its result removed). The backlog (ferry_async_backlog_requests, and the
autoscaler's) is the group's lag; the age of the oldest request (ferry_async_oldest_request_age_seconds,
SageMaker's ApproximateAgeOfOldestRequest) is that of the record at a committed offset: the oldest not
finished.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from serving.spec import AsyncSpec

log = logging.getLogger(__name__)


SESSION_TIMEOUT_MS = 10_000  # a worker killed (kill -9) holds its partitions this long: then they move on


def topic_and_group(spec: AsyncSpec, endpoint: str) -> tuple[str, str]:
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


class PendingView:
    """The requests of a topic accepted and not yet finished: the records past the workers' committed offsets,
    read by a consumer that is assigned the partitions (it never joins the group, never commits). Each
    `refresh` catches up with the commits and with the end of the topic, keeping only the records past the
    committed offsets (memory follows the backlog, not the history)."""

    def __init__(self, bootstrap: str, topic: str, group: str):
        from kafka import KafkaConsumer

        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                      client_id="ferry-async-status")
        self.tps: list = []
        self.records: dict = {}  # TopicPartition -> deque of (offset, inference id, accepted at)
        self.ids: dict[str, tuple] = {}  # inference id -> (TopicPartition, offset, accepted at) of its last record
        self.lock = threading.Lock()

    def refresh(self, timeout_s: float = 10.0) -> tuple[int, float | None]:
        """Catch up; (records not committed, accepted time of the oldest of them or None)."""
        from kafka import TopicPartition

        with self.lock:
            tps = [TopicPartition(self.topic, p) for p in sorted(self.consumer.partitions_for_topic(self.topic) or ())]
            if tps != self.tps:  # first call, or partitions added: start over from the committed offsets
                self.consumer.assign(tps)
                self.tps, self.records, self.ids = tps, {tp: deque() for tp in tps}, {}
                fresh = set(tps)
            else:
                fresh = set()
            if not tps:
                return 0, None
            ends = self.consumer.end_offsets(tps)
            starts = None
            committed = {}
            for tp in tps:
                c = self.consumer.committed(tp)
                if c is None:
                    starts = starts or self.consumer.beginning_offsets(tps)
                    c = starts[tp]
                committed[tp] = c
                q = self.records[tp]
                while q and q[0][0] < c:  # finished: forget it
                    off, rid, _ = q.popleft()
                    if self.ids.get(rid, (None, None))[:2] == (tp, off):
                        del self.ids[rid]
                if tp in fresh or self.consumer.position(tp) < c:
                    self.consumer.seek(tp, c)
            deadline = time.monotonic() + timeout_s
            while any(self.consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
                for tp, batch in self.consumer.poll(timeout_ms=200, max_records=10_000).items():
                    for r in batch:
                        if r.offset < committed[tp] or r.key is None:
                            continue
                        rid = r.key.decode(errors="replace")
                        self.records[tp].append((r.offset, rid, r.timestamp / 1000))
                        self.ids[rid] = (tp, r.offset, r.timestamp / 1000)
            backlog = sum(max(0, ends[tp] - committed[tp]) for tp in tps)
            heads = [q[0][2] for q in self.records.values() if q]
            return backlog, (min(heads) if heads and backlog else None)

    def pending(self, inference_id: str) -> float | None:
        """When a request still pending (queued or running) was accepted; None when the queue does not hold it."""
        self.refresh()
        with self.lock:
            found = self.ids.get(inference_id)
        return None if found is None else found[2]

    def close(self) -> None:
        self.consumer.close(autocommit=False)


class KafkaQueue:
    """The gateway's side: put (acknowledged by the broker before the 202); what is pending, the backlog and
    the oldest request's age from the topic and the group's commits (`PendingView`)."""

    def __init__(self, bootstrap: str, topic: str, group: str, partitions: int):
        from kafka import KafkaProducer

        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        ensure_topic(bootstrap, topic, partitions)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, retries=5,
                                      client_id="ferry-async-gateway")
        self._view: PendingView | None = None
        self._view_lock = threading.Lock()

    @property
    def view(self) -> PendingView:
        with self._view_lock:
            if self._view is None:
                self._view = PendingView(self.bootstrap, self.topic, self.group)
            return self._view

    def put(self, endpoint: str, inference_id: str, doc: str, expires_at: float | None) -> bool:
        record = {"id": inference_id, "endpoint": endpoint, "doc": doc, "accepted_at": time.time(),
                  "expires_at": expires_at}
        self.producer.send(self.topic, key=inference_id.encode(), value=orjson.dumps(record)).get(timeout=30)
        return True

    def pending(self, inference_id: str) -> float | None:
        """When a pending request was accepted; None when the queue does not hold it (see PendingView)."""
        return self.view.pending(inference_id)

    def backlog(self, endpoint: str) -> tuple[int, float]:
        """(records not committed by the workers, age in seconds of the oldest of them, 0 when none)."""
        n, oldest = self.view.refresh()
        return n, (max(0.0, time.time() - oldest) if oldest is not None else 0.0)

    def close(self) -> None:
        self.producer.close()
        if self._view is not None:
            self._view.close()


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
    """finish() for Kafka records: the record is acknowledged by the offset commit that follows. `stage` puts
    a Kafka notification of a record into the transaction of that commit, when its source makes them."""

    def __init__(self, source: "KafkaSource | None" = None):
        self.source = source

    def finish(self, claimed, state: str, reason: str | None = None) -> bool:
        return True

    def stage(self, claimed, topic: str, key: bytes, value: bytes, sent) -> bool:
        """Send `value` to `topic` in the transaction that commits `claimed`'s offset; False when the source
        does not commit in transactions (the caller sends it itself)."""
        if self.source is None or self.source.producer is None:
            return False
        self.source.stage(claimed.partition, claimed.offset, topic, key, value, sent)
        return True


@dataclass
class Offsets:
    """Per partition, the offsets delivered and not yet committed, and which of them are done; and the records
    being worked on (their task has not ended)."""

    pending: dict = field(default_factory=dict)  # TopicPartition -> {offset: done}
    active: set = field(default_factory=set)  # (TopicPartition, offset) of the records being worked on
    lock: threading.Lock = field(default_factory=threading.Lock)  # the worker's loop and the consumer's threads

    def add(self, tp, offset: int) -> None:
        with self.lock:
            self.pending.setdefault(tp, {})[offset] = False

    def start(self, tp, offset: int) -> None:
        with self.lock:
            self.active.add((tp, offset))

    def end(self, tp, offset: int) -> None:
        with self.lock:
            self.active.discard((tp, offset))

    def busy(self, tps) -> int:
        """Records of partitions `tps` being worked on."""
        with self.lock:
            return sum(1 for tp, _ in self.active if tp in tps)

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
        out = self.peek(tps)
        self.forget(out)
        return out

    def peek(self, tps=None) -> dict:
        """{tp: next offset to commit} for each partition whose oldest pending records are done (kept until
        `forget`: a commit that fails is tried again)."""
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
                if last is not None:
                    out[tp] = OffsetAndMetadata(last + 1, "", -1)
        return out

    def forget(self, committed: dict) -> None:
        """Drop the records below the offsets committed."""
        with self.lock:
            for tp, meta in committed.items():
                offsets = self.pending.get(tp, {})
                for off in [o for o in offsets if o < meta.offset]:
                    del offsets[off]


def _handover_listener(source: "KafkaSource"):
    """The rebalance listener of a worker's consumer (kafka-python's async listener: it runs on the consumer's
    IO loop, so it can wait without stopping the heartbeats). Before partitions go, it waits for the records
    of them that this worker is running - each bounded by its InvocationTimeoutSeconds; a record waiting to
    retry an infrastructure error gives up at once - then commits their offsets: the new owner starts after
    them, and no record is run by two workers. A consumer evicted from the group (partitions lost) cannot
    commit: it only forgets them."""
    from kafka import AsyncConsumerRebalanceListener

    class Handover(AsyncConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            revoked = set(revoked)
            source.revoking |= revoked
            try:
                waited = time.monotonic()
                while not source.closing and source.offsets.busy(revoked):
                    await source.consumer._net.sleep(0.05)  # the consumer's IO loop's own sleep (kafka-python 3)
                if source.producer is not None:  # a transaction: its notifications with its offsets
                    source.commit(revoked)
                else:
                    offsets = source.offsets.committable(revoked)
                    if offsets:
                        await source.consumer.commit_async(offsets)
                if time.monotonic() - waited > 0.1:
                    log.info("async queue %s: partitions handed over after %.1f s of finishing their records",
                             source.topic, time.monotonic() - waited)
            finally:
                source.drop(revoked)
                source.revoking -= revoked

        async def on_partitions_assigned(self, assigned):
            pass

        async def on_partitions_lost(self, lost):
            source.drop(lost)

    return Handover()


class KafkaSource:
    """A worker replica's consumer of an endpoint's topic. All consumer calls are made one at a time (from the
    worker's loop through a thread). Offsets are committed for the partitions the consumer still owns; a
    partition leaves only after the records of it that are running are finished and committed (the rebalance
    listener above)."""

    def __init__(self, bootstrap: str, topic: str, group: str, slots: int, max_poll_interval_ms: int,
                 loop: asyncio.AbstractEventLoop | None = None, transactional: bool = False):
        from kafka import KafkaConsumer, KafkaProducer

        self.topic = topic
        self.offsets = Offsets()
        self.staged: dict = {}  # (tp, offset) -> [(topic, key, value, sent callback)]: in the next transaction
        self.producer = None
        if transactional:  # a fresh id per source: a dead worker's open transaction is aborted after its timeout
            self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="ferry-async-worker",
                                          transactional_id=f"{group}.{uuid.uuid4().hex}",
                                          transaction_timeout_ms=SESSION_TIMEOUT_MS)
            self.producer.init_transactions()
        self.running: dict = {}  # (tp, offset) -> asyncio.Task
        self.revoking: set = set()  # partitions being handed over
        self.closing = False
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                      auto_offset_reset="earliest", max_poll_records=slots,
                                      max_poll_interval_ms=max_poll_interval_ms, client_id="ferry-async-worker",
                                      session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=3000)
        self.consumer.subscribe([topic], listener=_handover_listener(self))

    def poll(self, free: int) -> list[KafkaClaim]:
        """Up to `free` records (waiting up to half a second), each recorded as pending and being worked on."""
        batches = self.consumer.poll(timeout_ms=500, max_records=max(1, free))
        out = []
        for tp, records in batches.items():
            for r in records:
                self.offsets.add(tp, r.offset)
                try:
                    rec = orjson.loads(r.value)
                    out.append(KafkaClaim(rec["id"], rec["doc"], f"{tp.partition}:{r.offset}", rec["accepted_at"],
                                          rec.get("expires_at"), partition=tp, offset=r.offset))
                    self.offsets.start(tp, r.offset)
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    log.error("async queue %s: record %d/%d is not a Ferry request; skipped", tp.topic,
                              tp.partition, r.offset)
                    self.offsets.done(tp, r.offset)
        return out

    def drop(self, tps) -> None:
        """Forget the records of partitions `tps` (and their staged notifications): no longer this worker's."""
        tps = set(tps)
        self.offsets.drop(tps)
        with self.offsets.lock:
            for key in [k for k in self.staged if k[0] in tps]:
                del self.staged[key]

    def stage(self, tp, offset: int, topic: str, key: bytes, value: bytes, sent) -> None:
        """A notification of record (tp, offset), sent in the transaction that commits the record's offset."""
        with self.offsets.lock:
            self.staged.setdefault((tp, offset), []).append((topic, key, value, sent))

    def commit(self, tps=None) -> None:
        """Commit each owned partition's finished prefix of records (of `tps` only, when given). With a
        transactional producer, the notifications of those records and their offsets are one transaction:
        a reader with isolation_level=read_committed sees each notification once, even when a worker dies
        between sending and committing (the transaction is aborted, the records are delivered again and
        notified again, in the next owner's transaction)."""
        if tps is None:  # the loop's commit: partitions gone without a handover (lost) are forgotten
            owned = self.consumer.assignment()
            self.drop([tp for tp in list(self.offsets.pending) if tp not in owned])
        offsets = self.offsets.peek(tps)
        if not offsets:
            return
        if self.producer is None:
            self.consumer.commit(offsets)
            self.offsets.forget(offsets)
            return
        with self.offsets.lock:
            keys = [k for k in self.staged if k[0] in offsets and k[1] < offsets[k[0]].offset]
            notes = [n for k in sorted(keys, key=lambda k: (k[0].partition, k[1])) for n in self.staged[k]]
        try:
            self.producer.begin_transaction()
            for topic, key, value, _ in notes:
                self.producer.send(topic, key=key, value=value)
            self.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
            self.producer.commit_transaction()
        except Exception:
            try:
                self.producer.abort_transaction()
            except Exception:  # noqa: BLE001 - a fatal producer error: the next transaction says so
                log.warning("async queue %s: aborting a transaction failed", self.topic, exc_info=True)
            raise  # nothing committed: the same records and notifications go in the next transaction
        self.offsets.forget(offsets)
        with self.offsets.lock:
            for k in keys:
                self.staged.pop(k, None)
        for *_, sent in notes:
            sent()

    def close(self, commit: bool = True) -> None:
        """Leave the group (committing what is finished, unless a test simulates a crash), without waiting
        for the records still running: they are delivered again to the next owner."""
        self.closing = True
        if commit:
            try:
                self.commit()
            except Exception:  # noqa: BLE001 - uncommitted records are delivered again: nothing is lost
                log.warning("async queue: final commit failed", exc_info=True)
        else:
            self.drop(list(self.offsets.pending))  # a crash commits nothing, not even in the listener
        self.consumer.close(autocommit=False)
        if self.producer is not None:
            self.producer.close()
