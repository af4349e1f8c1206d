"""Kafka ingestion: a consumer-group worker that validates records and writes both stores, then commits.

Message shape on topic `ferry.features.<group>` (or the group's `topic`): the value is UTF-8 JSON, either
`{"<feature>": value, ...}` or SageMaker's `{"Record": [{"FeatureName": ..., "ValueAsString": ...}]}`; the key
should be the record id (so one id stays in one partition, in order). Per micro-batch (one poll):
validate -> bad records to `<topic>.dlq` (same key/value, headers `ferry.error`, `ferry.source.topic`,
`ferry.source.partition`, `ferry.source.offset`) -> online upsert under the event-time rule -> offline append
-> DLQ flushed -> offsets committed. At-least-once delivery; replays are no-ops online (equal event time is not
newer) and offline files written after the last commit are removed on (re)assignment, so a crash anywhere
leaves both stores exact. The DLQ is exact too: each commit stores how far the DLQ was written (commit
metadata), and a restarted worker scans the DLQ from there to skip records an earlier run already sent.
When a store fails the worker pauses its partitions, rewinds the batch, keeps polling (heartbeats) and resumes
when the store answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import Any, Iterable

import orjson
from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition

from featurestore import metrics
from featurestore.offline import kafka_tag
from featurestore.records import Record, RecordError, RecordParser
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 350 * 1024


def decode(parser: RecordParser, value: bytes | None) -> Record:
    """One Kafka message value -> validated Record (RecordError on anything wrong)."""
    if value is None:
        raise RecordError("value", "empty message (tombstones are not records)")
    if len(value) > MAX_MESSAGE_BYTES:
        raise RecordError("value", f"record larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as e:
        raise RecordError("value", f"not UTF-8 JSON: {e}") from None
    if isinstance(obj, dict) and isinstance(obj.get("Record"), list) and len(obj) == 1:
        return parser.parse_sagemaker(obj["Record"])
    return parser.parse(obj)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, worker: "IngestWorker"):
        self.worker = worker

    def on_partitions_revoked(self, revoked):
        self.worker._commit_pending()

    def on_partitions_assigned(self, assigned):
        self.worker._fresh.update(assigned)
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))

    def on_partitions_lost(self, lost):  # another member may own them now: do not commit
        self.worker._pending.clear()


class IngestWorker:
    """Consumes the topics of some feature groups into a FeatureStore."""

    def __init__(self, store: FeatureStore, groups: Iterable[FeatureGroupSpec], bootstrap_servers: str,
                 consumer_group: str = "ferry-features", max_batch: int = 5000, poll_ms: int = 200,
                 client_id: str = "ferry-ingest", instance_id: str | None = None,
                 session_timeout_ms: int = 10_000):
        self.store = store
        self.by_topic = {g.kafka_topic: g for g in groups}
        if not self.by_topic:
            raise ValueError("no feature groups to ingest")
        self.parsers = {t: store.parser(g.name) for t, g in self.by_topic.items()}
        self.max_batch = max_batch
        self.poll_ms = poll_ms
        self.bootstrap_servers = bootstrap_servers
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=consumer_group, client_id=client_id,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=max_batch,
            group_instance_id=instance_id, session_timeout_ms=session_timeout_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=32 * 1024 * 1024)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers, client_id=client_id + "-dlq",
                                      acks="all", linger_ms=5)
        self._pending: dict[TopicPartition, OffsetAndMetadata] = {}
        self._dlq_sent: list[Any] = []
        self._dlq_marks: dict[str, dict[int, int]] = defaultdict(dict)
        self._dlq_done: dict[TopicPartition, set[int]] = defaultdict(set)
        self._fresh: set[TopicPartition] = set()
        self._stop = threading.Event()
        self._rate_window: list[tuple[float, int]] = []
        self._ensure_topics()
        self.consumer.subscribe(list(self.by_topic), listener=_Listener(self))

    def _ensure_topics(self) -> None:
        """Create missing source and DLQ topics with the broker's defaults (so the worker may start first)."""
        wanted = [t for topic in self.by_topic for t in (topic, topic + ".dlq")]
        try:
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        except KafkaError as e:
            log.warning("cannot check topics: %s", e)
            return
        try:
            missing = [t for t in wanted if t not in set(admin.list_topics())]
            if missing:
                admin.create_topics([NewTopic(t, -1, -1) for t in missing])
                log.info("created topics %s", missing)
        except TopicAlreadyExistsError:
            pass
        except KafkaError as e:  # e.g. no permission: auto-creation or an operator may provide them
            log.warning("could not create topics %s: %s", wanted, e)
        finally:
            admin.close()

    # ---- lifecycle
    def stop(self) -> None:
        self._stop.set()

    def run(self, until_idle: float | None = None) -> None:
        """Consume until stop() (or, with until_idle, until no record arrived for that many seconds at zero lag)."""
        last_data = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = self.consumer.poll(timeout_ms=self.poll_ms, max_records=self.max_batch)
                if batch:
                    self._clean_fresh()
                    if self._process(batch):
                        last_data = time.monotonic()
                self._update_lag()
                if until_idle is not None and not batch and time.monotonic() - last_data > until_idle \
                        and self._total_lag() == 0 and self.consumer.assignment():
                    log.info("idle for %.1fs at zero lag: stopping", until_idle)
                    break
        finally:
            self.close()

    def close(self) -> None:
        try:
            self._commit_pending()
        finally:
            self.producer.close(timeout=10)
            self.consumer.close(autocommit=False)

    # ---- the micro-batch
    def _clean_fresh(self) -> None:
        """Newly assigned partitions: undo what a crashed run wrote past the committed offset.

        Offline files from those offsets are removed (they will be rewritten); DLQ records already sent for
        them are found by scanning the DLQ from the marks stored in the commit metadata, and not sent again.
        """
        fresh, self._fresh = self._fresh, set()
        by_topic: dict[str, dict[int, int]] = defaultdict(dict)
        marks: dict[str, dict[int, int]] = defaultdict(dict)
        for tp in fresh:
            om = self.consumer.committed(tp, metadata=True)
            by_topic[tp.topic][tp.partition] = om.offset if om else 0
            dlq = tp.topic + ".dlq"
            for p, o in (orjson.loads(om.metadata) if om and om.metadata else {}).items():
                p = int(p)
                marks[dlq][p] = min(marks[dlq].get(p, o), o)
                self._dlq_marks[dlq][p] = max(self._dlq_marks[dlq].get(p, 0), o)
        for topic, committed in by_topic.items():
            spec = self.by_topic[topic]
            if spec.offline_store.enabled:
                self.store.offline(spec).remove_uncommitted(spec, topic, committed)
            for (part, off) in self._scan_dlq(topic, marks[topic + ".dlq"], committed):
                self._dlq_done[TopicPartition(topic, part)].add(off)

    def _scan_dlq(self, topic: str, start: dict[int, int], committed: dict[int, int]) -> set[tuple[int, int]]:
        """(source partition, offset) of DLQ records for `topic` at or past the committed offsets."""
        dlq = topic + ".dlq"
        c = KafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False, group_id=None)
        found: set[tuple[int, int]] = set()
        try:
            parts = c.partitions_for_topic(dlq)
            if not parts:
                return found
            tps = [TopicPartition(dlq, p) for p in parts]
            c.assign(tps)
            ends = c.end_offsets(tps)
            for tp in tps:
                if tp.partition in start:
                    c.seek(tp, start[tp.partition])
                else:
                    c.seek_to_beginning(tp)
            deadline = time.monotonic() + 120
            while any(c.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
                for msgs in c.poll(timeout_ms=200).values():
                    for m in msgs:
                        h = dict(m.headers or [])
                        if h.get("ferry.source.topic", b"").decode() != topic:
                            continue
                        part, off = int(h["ferry.source.partition"]), int(h["ferry.source.offset"])
                        if part in committed and off >= committed[part]:
                            found.add((part, off))
        finally:
            c.close()
        if found:
            log.info("%s: %d records already in the DLQ from an earlier run; not sent again", topic, len(found))
        return found

    def _process(self, batch: dict[TopicPartition, list[Any]]) -> bool:
        started = time.time()
        good: dict[TopicPartition, list[Record]] = {}
        n_dlq: dict[str, int] = defaultdict(int)
        for tp, msgs in batch.items():
            parser = self.parsers[tp.topic]
            ok: list[Record] = []
            for m in msgs:
                try:
                    ok.append(decode(parser, m.value))
                except RecordError as e:
                    if self._dead_letter(tp, m, e):
                        n_dlq[self.by_topic[tp.topic].name] += 1
            good[tp] = ok
        try:
            applied = self._write(batch, good)
            self.producer.flush(timeout=30)
            self._note_dlq_offsets()
        except Exception as e:  # a store or the DLQ is failing: rewind and back off, never skip records
            log.warning("write failed (%s: %s); pausing partitions", type(e).__name__, e)
            for tp, msgs in batch.items():
                self.consumer.seek(tp, msgs[0].offset)
            self._fresh.update(batch)  # files and DLQ records of the failed batch are found before the retry
            try:
                self.producer.flush(timeout=30)
                self._note_dlq_offsets()
            except Exception as fe:
                log.warning("DLQ flush failed: %s", fe)
            self._backoff()
            return False
        for tp, msgs in batch.items():
            nxt = msgs[-1].offset + 1
            meta = orjson.dumps({str(k): v for k, v in self._dlq_marks[tp.topic + ".dlq"].items()}).decode()
            self._pending[tp] = OffsetAndMetadata(nxt, meta, -1)
            done = self._dlq_done.get(tp)
            if done:
                self._dlq_done[tp] = {o for o in done if o >= nxt}
        self._commit_pending()
        self._observe(batch, good, applied, n_dlq, started)
        return True

    def _write(self, batch, good) -> dict[str, int]:
        applied: dict[str, int] = defaultdict(int)
        by_group: dict[str, list[Record]] = defaultdict(list)
        for tp, recs in good.items():
            by_group[self.by_topic[tp.topic].name].extend(recs)
        for name, recs in by_group.items():
            if recs:
                spec = self.store.group(name)
                applied[name] += self.store.write_batch(spec, recs, targets=("OnlineStore",))
        for tp, recs in good.items():
            spec = self.by_topic[tp.topic]
            if recs and spec.offline_store.enabled:
                msgs = batch[tp]
                self.store.offline(spec).append(spec, recs, tag=kafka_tag(tp.topic, tp.partition, msgs[0].offset,
                                                                           msgs[-1].offset))
        return applied

    def _dead_letter(self, tp: TopicPartition, m: Any, err: RecordError) -> bool:
        """Send a bad record to `<topic>.dlq` unless an earlier run already did; True when sent."""
        if m.offset in self._dlq_done.get(tp, ()):
            return False
        headers = [("ferry.error", f"{type(err).__name__}: {err}".encode()),
                   ("ferry.error.field", str(err.field).encode()),
                   ("ferry.source.topic", tp.topic.encode()),
                   ("ferry.source.partition", str(tp.partition).encode()),
                   ("ferry.source.offset", str(m.offset).encode()),
                   ("ferry.source.timestamp", str(m.timestamp).encode())]
        self._dlq_sent.append(self.producer.send(tp.topic + ".dlq", key=m.key, value=m.value, headers=headers))
        return True

    def _note_dlq_offsets(self) -> None:
        """After a flush: remember how far each DLQ partition has been written (stored in commit metadata)."""
        sent, self._dlq_sent = self._dlq_sent, []
        for fut in sent:
            md = fut.get(timeout=30)
            marks = self._dlq_marks[md.topic]
            marks[md.partition] = max(marks.get(md.partition, 0), md.offset + 1)

    def _commit_pending(self) -> None:
        if self._pending:
            self.consumer.commit(offsets=dict(self._pending))
            self._pending.clear()

    def _backoff(self) -> None:
        parts = list(self.consumer.assignment())
        self.consumer.pause(*parts)
        for g in self.by_topic.values():
            metrics.PAUSED.labels(g.name).set(1)
        delay = 0.2
        try:
            while not self._stop.is_set():
                self.consumer.poll(timeout_ms=int(delay * 1000))  # paused: no records, keeps the membership
                try:
                    self.store.online.ping()
                    break
                except Exception as e:
                    log.warning("online store still failing: %s", e)
                    delay = min(delay * 2, 5.0)
        finally:
            self.consumer.resume(*parts)
            for g in self.by_topic.values():
                metrics.PAUSED.labels(g.name).set(0)

    # ---- metrics
    def _observe(self, batch, good, applied, n_dlq, started) -> None:
        now = time.time()
        counts: dict[str, int] = defaultdict(int)
        newest: dict[str, float] = {}
        for tp, recs in good.items():
            name = self.by_topic[tp.topic].name
            counts[name] += len(recs)
            if recs:
                newest[name] = max(newest.get(name, float("-inf")), max(r.event_time for r in recs))
        for name, n in counts.items():
            metrics.RECORDS.labels(name, "applied").inc(applied.get(name, 0))
            metrics.RECORDS.labels(name, "stale").inc(n - applied.get(name, 0))
        for name, n in n_dlq.items():
            metrics.RECORDS.labels(name, "dlq").inc(n)
            metrics.DLQ.labels(name).inc(n)
        for name, t in newest.items():
            metrics.FRESHNESS.labels(name).set(now - t)
        total = sum(len(m) for m in batch.values())
        self._rate_window.append((now, total))
        self._rate_window = [(t, n) for t, n in self._rate_window if now - t <= 5.0]
        span = max(now - min(t for t, _ in self._rate_window), now - started, 1e-3)
        for g in {self.by_topic[tp.topic].name for tp in batch}:
            metrics.RATE.labels(g).set(sum(n for _, n in self._rate_window) / span)

    def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)
            if hw is not None:
                metrics.LAG.labels(self.by_topic[tp.topic].name, tp.topic, str(tp.partition)).set(
                    max(hw - self.consumer.position(tp), 0))

    def _total_lag(self) -> int:
        total = 0
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)
            if hw is None:
                end = self.consumer.end_offsets([tp])[tp]
                hw = end
            total += max(hw - self.consumer.position(tp), 0)
        return total


def _worker_process(settings: dict, groups: list[dict], bootstrap: str, options: dict, until_idle: float | None,
                    metrics_port: int | None) -> None:
    """Entry point of one worker process (spawned by run_processes)."""
    import signal

    from featurestore.spec import FeatureStoreSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    specs = [FeatureGroupSpec.model_validate(g) for g in groups]
    store = FeatureStore(FeatureStoreSettings.model_validate(settings), specs)
    worker = IngestWorker(store, specs, bootstrap, **options)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    try:
        worker.run(until_idle=until_idle)
    except KeyboardInterrupt:
        pass


def run_processes(store: FeatureStore, groups: list[FeatureGroupSpec], bootstrap: str, processes: int,
                  until_idle: float | None = None, metrics_port: int | None = None, **options: Any) -> int:
    """Run `processes` workers of one consumer group in separate processes (one per core: the GIL bounds one).

    Worker i serves its metrics on metrics_port + i; with an instance id, worker i uses `<id>-<i>`.
    Returns the number of workers that failed.
    """
    import multiprocessing
    import signal

    ctx = multiprocessing.get_context("spawn")
    settings = store.settings.model_dump()
    specs = [g.model_dump(mode="json", by_alias=False) for g in groups]
    procs = []
    for i in range(processes):
        opts = dict(options)
        if opts.get("instance_id"):
            opts["instance_id"] = f"{opts['instance_id']}-{i}"
        procs.append(ctx.Process(target=_worker_process, name=f"ferry-ingest-{i}", args=(
            settings, specs, bootstrap, opts, until_idle, None if metrics_port is None else metrics_port + i)))
    for p in procs:
        p.start()
    previous = signal.signal(signal.SIGTERM, lambda *_: [p.terminate() for p in procs])
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return sum(1 for p in procs if p.exitcode not in (0, -signal.SIGTERM))
