"""The code that sets the ingest workers' metrics (declared in featurestore.metrics) per micro-batch."""

from __future__ import annotations

import time
from collections import defaultdict

from featurestore.metrics import DLQ, FRESHNESS, LAG, RATE, RECORDS


class BatchMetrics:
    """Per-batch counters and the records/s gauge over a 5 s window."""

    def __init__(self) -> None:
        self._window: list[tuple[float, int]] = []

    def observe(self, groups_by_partition: dict, consumed: dict, good: dict, applied: dict[str, int],
                dead: dict[str, int], started: float) -> None:
        """`consumed`/`good`: per partition, messages / valid records; `applied`, `dead`: per group."""
        now = time.time()
        counts: dict[str, int] = defaultdict(int)
        newest: dict[str, float] = {}
        for tp, recs in good.items():
            name = groups_by_partition[tp]
            counts[name] += len(recs)
            if recs:
                newest[name] = max(newest.get(name, float("-inf")), max(r.event_time for r in recs))
        for name, n in counts.items():
            RECORDS.labels(name, "applied").inc(applied.get(name, 0))
            RECORDS.labels(name, "stale").inc(n - applied.get(name, 0))
        for name, n in dead.items():
            RECORDS.labels(name, "dlq").inc(n)
            DLQ.labels(name).inc(n)
        for name, t in newest.items():
            FRESHNESS.labels(name).set(now - t)
        self._window.append((now, sum(len(m) for m in consumed.values())))
        self._window = [(t, n) for t, n in self._window if now - t <= 5.0]
        span = max(now - min(t for t, _ in self._window), now - started, 1e-3)
        for name in {groups_by_partition[tp] for tp in consumed}:
            RATE.labels(name).set(sum(n for _, n in self._window) / span)


def lag(consumer, group_of_topic: dict[str, str]) -> None:
    """Set the per-partition lag gauges of this worker's assignment (a partition not fetched yet has no high
    watermark: skipped)."""
    for tp in consumer.assignment():
        hw = consumer.highwater(tp)
        if hw is not None:
            LAG.labels(group_of_topic[tp.topic], tp.topic, str(tp.partition)).set(max(hw - consumer.position(tp), 0))
