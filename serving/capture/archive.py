"""Copy a Kafka capture topic into the rotated JSONL folders the monitor reads.

Offsets are committed only after the records are written and flushed, so a crash repeats records rather
than losing them (readers keep the first copy of each eventId).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from kafka import KafkaConsumer

from serving.capture.files import RotatingJsonlWriter

log = logging.getLogger(__name__)


def archive_topic(bootstrap_servers: str, topic: str, destination: str | Path, endpoint: str,
                  group_id: str = "ferry-capture-archive", stop: threading.Event | None = None,
                  idle_exit_s: float | None = None) -> int:
    """Consume the topic into <destination>/<endpoint>/...; run until stop is set (or idle for idle_exit_s).
    Returns how many records were written."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap_servers.split(","), group_id=group_id,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             client_id=f"ferry-capture-archive-{endpoint}")
    writer = RotatingJsonlWriter(destination, endpoint)
    written, idle = 0, 0.0
    try:
        while not (stop and stop.is_set()):
            batches = consumer.poll(timeout_ms=1000, max_records=1000)
            records = []
            for msgs in batches.values():
                for m in msgs:
                    try:
                        records.append(json.loads(m.value))
                    except (ValueError, TypeError):
                        log.error("capture topic %s offset %d: not a JSON capture record, skipped", topic, m.offset)
            if records:
                writer.write(records)
            if batches:
                consumer.commit()
                written += len(records)
                idle = 0.0
            else:
                idle += 1.0
                if idle_exit_s is not None and idle >= idle_exit_s:
                    break
    finally:
        writer.close()
        consumer.close()
    return written
