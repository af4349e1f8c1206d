"""Kafka ingestion: consumer-group workers that validate records and write both stores, then commit.

Message shape on topic `ferry.features.<group>` (or the group's `topic`): the value is UTF-8 JSON, either
`{"<feature>": value, ...}` or SageMaker's `{"Record": [{"FeatureName": ..., "ValueAsString": ...}]}`; the key
should be the record id (so one id stays in one partition, in order). Per micro-batch (one poll):
validate -> bad records to `<topic>.dlq` -> online upsert under the event-time rule -> offline append -> DLQ
flushed -> offsets committed. At-least-once delivery made exact: replays are no-ops online, and what a crashed run
wrote past the last commit (offline files, DLQ records) is found on (re)assignment and not written twice.

Modules, one job each: `decode` (message -> record), `topics` (create missing topics), `dlq` (dead letters, sent
once across crashes), `recovery` (undo a crashed run's writes past the commit), `rebalance` (the listener),
`backoff` (pause while a store fails), `watchdog` (notice a worker that consumes nothing while records wait),
`metrics`, `worker` (the consume loop), `supervisor` (one or N worker processes, signals, exit codes).
"""

from featurestore.ingest.decode import MAX_MESSAGE_BYTES, decode
from featurestore.ingest.supervisor import run_ingest
from featurestore.ingest.watchdog import IngestStalled
from featurestore.ingest.worker import IngestWorker

__all__ = ["MAX_MESSAGE_BYTES", "IngestStalled", "IngestWorker", "decode", "run_ingest"]
