"""Prometheus metrics of the Kafka ingestion worker (default registry, labelled by feature group)."""

from prometheus_client import Counter, Gauge

RECORDS = Counter("ferry_features_ingest_records", "Records consumed, by outcome "
                  "(applied online, stale = older or equal event time, offline only, dlq)",
                  ["group", "outcome"])
DLQ = Counter("ferry_features_ingest_dlq", "Records sent to the dead-letter topic", ["group"])
RATE = Gauge("ferry_features_ingest_records_per_second", "Records per second over the last batches", ["group"])
LAG = Gauge("ferry_features_ingest_lag", "Consumer lag in records (high watermark - position)",
            ["group", "topic", "partition"])
FRESHNESS = Gauge("ferry_features_ingest_freshness_seconds",
                  "Write time minus event time of the newest record in the last batch", ["group"])
PAUSED = Gauge("ferry_features_ingest_paused", "1 while partitions are paused because a store is failing",
               ["group"])
