"""The consume loop: poll a micro-batch, validate, dead-letter the bad, write both stores, commit."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any, Iterable

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from featurestore.ingest import metrics
from featurestore.ingest.backoff import wait_for_store
from featurestore.ingest.decode import decode
from featurestore.ingest.dlq import DeadLetters
from featurestore.ingest.rebalance import RebalanceListener
from featurestore.ingest.recovery import recover_partitions
from featurestore.ingest.topics import ensure_topics
from featurestore.ingest.watchdog import IngestStalled, Watchdog
from featurestore.offline import kafka_tag
from featurestore.records import Record, RecordError
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore

log = logging.getLogger(__name__)


class IngestWorker:
    """Consumes the topics of some feature groups into a FeatureStore (one member of a consumer group)."""

    def __init__(self, store: FeatureStore, groups: Iterable[FeatureGroupSpec], bootstrap_servers: str,
                 consumer_group: str = "ferry-features", max_batch: int = 5000, poll_ms: int = 200,
                 client_id: str = "ferry-ingest", instance_id: str | None = None,
                 session_timeout_ms: int = 10_000, stall_timeout_s: float = 60.0, max_rejoins: int = 3):
        self.store = store
        self.by_topic = {g.kafka_topic: g for g in groups}
        if not self.by_topic:
            raise ValueError("no feature groups to ingest")
        self.group_of_topic = {t: g.name for t, g in self.by_topic.items()}
        self.parsers = {t: store.parser(g.name) for t, g in self.by_topic.items()}
        self.max_batch, self.poll_ms = max_batch, poll_ms
        self.consumer_group = consumer_group
        self._consumer_options = dict(
            bootstrap_servers=bootstrap_servers, group_id=consumer_group, client_id=client_id,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=max_batch,
            group_instance_id=instance_id, session_timeout_ms=session_timeout_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024)
        self.dlq = DeadLetters(bootstrap_servers, client_id + "-dlq")
        self.watchdog = Watchdog(bootstrap_servers, consumer_group, self.by_topic, stall_timeout_s, max_rejoins)
        self.metrics = metrics.BatchMetrics()
        self._pending: dict[TopicPartition, OffsetAndMetadata] = {}
        self._fresh: set[TopicPartition] = set()
        self._stop = threading.Event()
        ensure_topics(bootstrap_servers, [t for topic in self.by_topic for t in (topic, topic + ".dlq")])
        self.consumer = self._join()

    def _join(self) -> KafkaConsumer:
        consumer = KafkaConsumer(**self._consumer_options)
        consumer.subscribe(list(self.by_topic), listener=RebalanceListener(
            revoked=self._give_up, assigned=self._assigned, lost=self._forget))
        return consumer

    def _assigned(self, partitions: set[TopicPartition]) -> None:
        """Every assignment, not only the first, is recovered before its first batch is written."""
        self._fresh.update(partitions)

    def _give_up(self, partitions: set[TopicPartition]) -> None:
        """Partitions about to be revoked: commit what was written for them, then forget them (an offset that could
        not be committed now is never committed later, when another member may own them and replay those records)."""
        try:
            self.commit_pending()
        finally:
            self._forget(partitions)

    def _forget(self, partitions: set[TopicPartition]) -> None:
        for tp in partitions:
            self._pending.pop(tp, None)
        self._fresh.difference_update(partitions)  # recovery on a partition another member owns would undo its work
        self.dlq.forget(partitions)

    # ---- lifecycle
    def stop(self) -> None:
        self._stop.set()

    def run(self, until_idle: float | None = None) -> None:
        """Consume until stop(), or with `until_idle` until no record arrived for that many seconds and nothing is
        left to consume (this worker's lag and the group's backlog are zero).
        Raises IngestStalled when the watchdog gives up."""
        last_data = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = self.consumer.poll(timeout_ms=self.poll_ms, max_records=self.max_batch)
                if self._pending:  # a commit the broker could not take earlier
                    self.commit_pending()
                if batch:
                    if self._fresh:
                        self._recover(batch)
                        continue
                    if self._process(batch):
                        last_data = time.monotonic()
                        self.watchdog.progressed()
                    continue
                metrics.lag(self.consumer, self.group_of_topic)
                stall = self.watchdog.check()
                if stall is not None:
                    self._rejoin(stall)
                if until_idle is not None and time.monotonic() - last_data > until_idle and self._caught_up():
                    log.info("idle for %.1fs with nothing left to consume: stopping", until_idle)
                    break
        finally:
            self.close()

    def _recover(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Recover newly assigned partitions, then consume them again from the committed offsets the recovery read
        (the batch is rewound, not written). The positions were set at assignment; replaying from anywhere but the
        point recovery cleaned up from would write records twice or skip them. Retried when Kafka is away."""
        fresh = set(self._fresh)
        self._fresh.clear()
        self._rewind(batch)
        try:
            start = recover_partitions(self.consumer, self.store, self.dlq, self.by_topic, fresh)
        except KafkaError as e:
            log.warning("cannot recover %d partitions yet (%s); retrying", len(fresh), e)
            self._fresh |= fresh
            time.sleep(0.5)
            return
        for tp, offset in start.items():
            self.consumer.seek(tp, offset)

    def _rewind(self, batch: dict[TopicPartition, list[Any]]) -> None:
        for tp, msgs in batch.items():
            self.consumer.seek(tp, msgs[0].offset)

    def _caught_up(self) -> bool:
        """Nothing left for the group: every partition of its topics is committed up to its end (with nothing
        pending, that covers this worker's own partitions: what it polled, it wrote and committed). A group mate that
        died still owns its partitions until its session expires; leaving before that would strand their records,
        so the worker waits for the rebalance that hands them over."""
        try:
            return not self._pending and all(pos >= end for pos, end in self.watchdog.backlog().values())
        except KafkaError:  # the broker is away: not known to be caught up
            return False

    def _rejoin(self, stall: str) -> None:
        """Leave the group and join again with a new consumer; IngestStalled after max_rejoins in a row."""
        if self.watchdog.rejoins >= self.watchdog.max_rejoins:
            raise IngestStalled(f"{stall}; rejoined {self.watchdog.rejoins} times without progress, giving up "
                                f"(this worker's partitions: {sorted(self.consumer.assignment()) or 'none'})")
        log.warning("watchdog: %s; rejoining the group (%d)", stall, self.watchdog.rejoins + 1)
        try:
            self.commit_pending()
        finally:
            self.consumer.close(autocommit=False)
        self._fresh.clear()
        self.consumer = self._join()
        self.watchdog.rejoined()

    def close(self) -> None:
        try:
            self.commit_pending()
        finally:
            self.dlq.close()
            self.watchdog.close()
            self.consumer.close(autocommit=False)

    def commit_pending(self) -> None:
        """Commit the offsets of written batches. When the broker cannot take them they stay pending (retried on
        the next loop); when the group has moved on they are dropped (whoever owns the partitions replays them,
        and recovery keeps the stores exact)."""
        if not self._pending:
            return
        try:
            self.consumer.commit(offsets=dict(self._pending))
        except CommitFailedError as e:
            log.warning("commit refused (%s): the group rebalanced; those records will be replayed", e)
        except KafkaError as e:
            log.warning("commit failed (%s: %s); will retry", type(e).__name__, e)
            return
        self._pending.clear()

    # ---- the micro-batch
    def _process(self, batch: dict[TopicPartition, list[Any]]) -> bool:
        """Write one polled batch and commit it; False when a store failed (the batch is rewound and retried)."""
        started = time.time()
        good: dict[TopicPartition, list[Record]] = {}
        dead: dict[str, int] = defaultdict(int)
        for tp, msgs in batch.items():
            parser = self.parsers[tp.topic]
            ok: list[Record] = []
            for m in msgs:
                try:
                    ok.append(decode(parser, m.value))
                except RecordError as e:
                    if self.dlq.send(tp, m, e):
                        dead[self.group_of_topic[tp.topic]] += 1
            good[tp] = ok
        try:
            applied = self._write(batch, good)
            self.dlq.flush()
        except Exception as e:  # a store or the DLQ is failing: rewind and back off, never skip records
            log.warning("write failed (%s: %s); pausing partitions", type(e).__name__, e)
            self._rewind(batch)
            self._fresh.update(batch)  # files and DLQ records of the failed batch are found before the retry
            try:
                self.dlq.flush()
            except Exception as fe:
                log.warning("DLQ flush failed: %s", fe)
            wait_for_store(self.consumer, self.store.ping, self._stop, {g.name for g in self.by_topic.values()})
            return False
        for tp, msgs in batch.items():
            nxt = msgs[-1].offset + 1
            self._pending[tp] = OffsetAndMetadata(nxt, self.dlq.checkpoint(tp, nxt), -1)
        self.commit_pending()
        self.metrics.observe({tp: self.group_of_topic[tp.topic] for tp in batch}, batch, good, applied, dead,
                             started)
        return True

    def _write(self, batch: dict[TopicPartition, list[Any]],
               good: dict[TopicPartition, list[Record]]) -> dict[str, int]:
        """Per group: every valid record online (in partition, then offset order), offline one file set per
        partition tagged with its offset range. Returns records applied online per group."""
        parts: dict[str, list[tuple[str, list[Record]]]] = defaultdict(list)
        for tp, recs in good.items():
            if recs:
                msgs = batch[tp]
                parts[self.group_of_topic[tp.topic]].append(
                    (kafka_tag(tp.topic, tp.partition, msgs[0].offset, msgs[-1].offset), recs))
        return {name: self.store.write_parts(self.store.group(name), p) for name, p in parts.items()}
