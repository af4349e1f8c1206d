"""The dead-letter topic `<topic>.dlq`: bad records sent once, even across crashes.

A dead letter keeps the source key and value; headers `ferry.error`, `ferry.error.field`, `ferry.source.topic`,
`ferry.source.partition`, `ferry.source.offset`, `ferry.source.timestamp`. Every offset commit stores, in its
metadata, where in each DLQ partition a later recovery must start reading: how far this worker had written it, or
earlier where a record lies that an earlier run sent for an offset past the commit. A restarted worker scans the DLQ
from there (`recover`) and does not send again a record an earlier run already dead-lettered (matched by the source
headers).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any, Iterable

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from featurestore.records import RecordError

log = logging.getLogger(__name__)

SCAN_SECONDS = 120  # at most this long to read a DLQ back on recovery


class DeadLetters:
    def __init__(self, bootstrap_servers: str, client_id: str):
        self.bootstrap_servers = bootstrap_servers
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers, client_id=client_id, acks="all",
                                      linger_ms=5)
        self._sent: list[Any] = []
        self._marks: dict[str, dict[int, int]] = defaultdict(dict)  # DLQ topic -> partition -> next offset
        # source partition -> offset already dead-lettered by an earlier run -> where: (DLQ partition, DLQ offset)
        self._done: dict[TopicPartition, dict[int, tuple[int, int]]] = defaultdict(dict)

    def send(self, tp: TopicPartition, message: Any, err: RecordError) -> bool:
        """Dead-letter one message unless an earlier run already did; True when sent."""
        if message.offset in self._done.get(tp, ()):
            return False
        headers = [("ferry.error", f"{type(err).__name__}: {err}".encode()),
                   ("ferry.error.field", str(err.field).encode()),
                   ("ferry.source.topic", tp.topic.encode()),
                   ("ferry.source.partition", str(tp.partition).encode()),
                   ("ferry.source.offset", str(message.offset).encode()),
                   ("ferry.source.timestamp", str(message.timestamp).encode())]
        self._sent.append(self.producer.send(tp.topic + ".dlq", key=message.key, value=message.value,
                                             headers=headers))
        return True

    def flush(self) -> None:
        """Wait for every send; remember how far each DLQ partition has been written."""
        self.producer.flush(timeout=30)
        sent, self._sent = self._sent, []
        for fut in sent:
            md = fut.get(timeout=30)
            marks = self._marks[md.topic]
            marks[md.partition] = max(marks.get(md.partition, 0), md.offset + 1)

    def checkpoint(self, tp: TopicPartition, next_offset: int) -> str:
        """The metadata of an offset commit of `tp` at `next_offset`: per DLQ partition, where a recovery from this
        commit starts reading. That is how far this worker has written it, unless a record an earlier run sent for an
        offset at or past `next_offset` lies before that (found by `recover`, not replayed yet): then that record's
        DLQ offset, or the next recovery would miss it and send it again. Offsets below the commit are never replayed:
        they are forgotten."""
        done = {o: at for o, at in self._done.get(tp, {}).items() if o >= next_offset}
        self._done[tp] = done
        start = dict(self._marks[tp.topic + ".dlq"])
        for part, off in done.values():
            start[part] = min(start.get(part, off), off)
        return orjson.dumps({str(k): v for k, v in start.items()}).decode()

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions this worker no longer owns: their next owner recovers them from the DLQ itself."""
        for tp in partitions:
            self._done.pop(tp, None)

    def recover(self, topic: str, committed: dict[int, int], metadata: Iterable[str]) -> None:
        """After (re)assignment: find the DLQ records an earlier run sent for offsets past `committed`."""
        dlq = topic + ".dlq"
        start: dict[int, int] = {}
        for meta in metadata:
            for p, o in orjson.loads(meta).items():
                p = int(p)
                start[p] = min(start.get(p, o), o)
                self._marks[dlq][p] = max(self._marks[dlq].get(p, 0), o)
        for (part, off), at in self._scan(topic, start, committed).items():
            done = self._done[TopicPartition(topic, part)]
            done[off] = min(done.get(off, at), at)

    def _scan(self, topic: str, start: dict[int, int],
              committed: dict[int, int]) -> dict[tuple[int, int], tuple[int, int]]:
        """(source partition, offset) -> (DLQ partition, DLQ offset) of the DLQ records for `topic` at or past the
        committed offsets (the first, should one have been sent twice)."""
        c = KafkaConsumer(bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False, group_id=None)
        found: dict[tuple[int, int], tuple[int, int]] = {}
        try:
            parts = c.partitions_for_topic(topic + ".dlq")
            if not parts:
                return found
            tps = [TopicPartition(topic + ".dlq", p) for p in parts]
            c.assign(tps)
            ends = c.end_offsets(tps)
            for tp in tps:
                if tp.partition in start:
                    c.seek(tp, start[tp.partition])
                else:
                    c.seek_to_beginning(tp)
            deadline = time.monotonic() + SCAN_SECONDS
            while any(c.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
                for msgs in c.poll(timeout_ms=200).values():
                    for m in msgs:
                        h = dict(m.headers or [])
                        if h.get("ferry.source.topic", b"").decode() != topic:
                            continue
                        part, off = int(h["ferry.source.partition"]), int(h["ferry.source.offset"])
                        if part in committed and off >= committed[part]:
                            found.setdefault((part, off), (m.partition, m.offset))
        finally:
            c.close()
        if found:
            log.info("%s: %d records already in the DLQ from an earlier run; not sent again", topic, len(found))
        return found

    def close(self) -> None:
        self.producer.close(timeout=10)
