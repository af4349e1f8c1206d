"""The watchdog: notices a worker that consumes nothing while its topics hold records nobody consumes.

Whatever the Kafka client does (a member that joined but never got an assignment, a fetcher that stopped), the
symptom is the same and is visible from outside the consumer: the group's committed offsets stay put while the
topics' end offsets are past them. When that lasts `timeout_s` while this worker is idle, the worker rejoins the
group with a new consumer; after `max_rejoins` rejoins in a row without progress it stops with IngestStalled
(the CLI exits non-zero with its message). The gauge `ferry_features_ingest_stalled_seconds` and the counter
`ferry_features_ingest_watchdog_rejoins_total` show it. A worker paused because its store is down is not idle:
its backoff loop runs instead, and the watchdog does not judge it (its idle group mates may rejoin, and exit after
`max_rejoins`, if the outage outlasts their patience).
"""

from __future__ import annotations

import logging
import time
from typing import Iterable

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from featurestore import metrics

log = logging.getLogger(__name__)


class IngestStalled(RuntimeError):
    """The consumer group made no progress though records wait, and rejoining did not help."""


class Watchdog:
    def __init__(self, bootstrap_servers: str, consumer_group: str, topics: Iterable[str], timeout_s: float = 60.0,
                 max_rejoins: int = 3):
        self.consumer_group, self.topics = consumer_group, sorted(topics)
        self.timeout_s, self.max_rejoins = timeout_s, max_rejoins
        self.check_every_s = min(2.0, timeout_s / 3)
        self._bootstrap = bootstrap_servers
        self._probe: KafkaConsumer | None = None
        self._admin: KafkaAdminClient | None = None
        now = time.monotonic()
        self._busy_at = now  # last batch this worker processed
        self._checked_at = now
        self._snapshot: dict[TopicPartition, int] | None = None
        self._since = now  # when the committed offsets last moved (or the backlog last was empty)
        self.rejoins = 0  # in a row, without progress in between

    def progressed(self) -> None:
        """This worker processed a batch."""
        self._busy_at = time.monotonic()
        self.rejoins = 0

    def backlog(self) -> dict[TopicPartition, tuple[int, int]]:
        """Per partition of the topics: (the group's committed offset, end offset), from the broker."""
        if self._probe is None:
            self._probe = KafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False)
            self._admin = KafkaAdminClient(bootstrap_servers=self._bootstrap)
        tps = [TopicPartition(t, p) for t in self.topics for p in sorted(self._probe.partitions_for_topic(t) or ())]
        if not tps:
            return {}
        ends = self._probe.end_offsets(tps)
        begins = self._probe.beginning_offsets(tps)
        committed = self._admin.list_group_offsets({self.consumer_group: tps}).get(self.consumer_group, {})
        out = {}
        for tp in tps:
            om = committed.get(tp)
            pos = om.offset if om is not None and om.offset >= 0 else begins[tp]
            out[tp] = (pos, ends[tp])
        return out

    def check(self) -> str | None:
        """Call while idle. A description of the stall once it has lasted `timeout_s`, else None."""
        now = time.monotonic()
        if now - self._busy_at < self.check_every_s or now - self._checked_at < self.check_every_s:
            return None
        self._checked_at = now
        try:
            offsets = self.backlog()
        except KafkaError as e:  # the broker itself is away: the consumer reports that on its own
            log.warning("watchdog cannot read offsets: %s", e)
            return None
        waiting = {tp: end - pos for tp, (pos, end) in offsets.items() if end > pos}
        snapshot = {tp: pos for tp, (pos, _) in offsets.items()}
        if not waiting or snapshot != self._snapshot:  # caught up, or the group moved: no stall
            if self._snapshot is not None:
                self.rejoins = 0
            self._snapshot, self._since = snapshot, now
            metrics.STALLED.labels(self.consumer_group).set(0)
            return None
        stalled = now - self._since
        metrics.STALLED.labels(self.consumer_group).set(stalled)
        if stalled < self.timeout_s:
            return None
        parts = ", ".join(f"{tp.topic}[{tp.partition}]: {n}" for tp, n in sorted(waiting.items()))
        return (f"consumer group {self.consumer_group!r} has committed nothing for {stalled:.0f}s while records "
                f"wait ({parts})")

    def rejoined(self) -> None:
        """The worker rejoined: judge the new membership afresh."""
        self.rejoins += 1
        metrics.REJOINS.labels(self.consumer_group).inc()
        self._since = self._busy_at = time.monotonic()

    def close(self) -> None:
        for c in (self._probe, self._admin):
            if c is not None:
                c.close()
