"""Every Prometheus metric of the feature store, declared once (prometheus_client's default registry): the
ingest workers' (set per micro-batch by featurestore.ingest) and the online reads' latency."""

from __future__ import annotations

from core.metrics import MetricSet

METRICS = MetricSet("featurestore")
RECORDS = METRICS.counter("ferry_features_ingest_records_total", "Records consumed, by outcome (applied online, "
                          "stale = older or equal event time, offline only, dlq)", ["group", "outcome"]).client()
DLQ = METRICS.counter("ferry_features_ingest_dlq_total", "Records sent to the dead-letter topic", ["group"]).client()
RATE = METRICS.gauge("ferry_features_ingest_records_per_second", "Records per second over the last batches",
                     ["group"]).client()
LAG = METRICS.gauge("ferry_features_ingest_lag", "Consumer lag in records (high watermark - position)",
                    ["group", "topic", "partition"]).client()
FRESHNESS = METRICS.gauge("ferry_features_ingest_freshness_seconds", "Write time minus event time of the newest "
                          "record in the last batch", ["group"], unit="seconds").client()
PAUSED = METRICS.gauge("ferry_features_ingest_paused", "1 while partitions are paused because a store is failing",
                       ["group"]).client()
STALLED = METRICS.gauge("ferry_features_ingest_stalled_seconds", "How long the consumer group's committed offsets "
                        "have not moved while its topics hold records past them (0 when moving or caught up)",
                        ["consumer_group"], unit="seconds").client()
REJOINS = METRICS.counter("ferry_features_ingest_watchdog_rejoins_total", "Times the watchdog made a stalled "
                          "worker rejoin its consumer group", ["consumer_group"]).client()
READ_LATENCY = METRICS.histogram("ferry_features_read_latency_seconds", "Online-store read time of one call "
                                 "(GetRecord, BatchGetRecord per group, the inference lookup step)",
                                 ["group", "operation"], unit="seconds",
                                 buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25, 1)).client()
