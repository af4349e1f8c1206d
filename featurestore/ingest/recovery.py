"""Crash recovery on (re)assignment: undo what an earlier run wrote past the committed offsets.

Offline files tagged with offsets at or past the commit are removed (the replay rewrites them exactly once; the
online replay is a no-op, an equal event time is not newer) and the DLQ records already sent are looked up.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from kafka.structs import TopicPartition

from featurestore.ingest.dlq import DeadLetters
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore


def recover_partitions(consumer, store: FeatureStore, dlq: DeadLetters, by_topic: dict[str, FeatureGroupSpec],
                       partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
    """Clean up past each partition's committed offset; return those offsets (partitions with a commit), where the
    replay must start."""
    committed: dict[str, dict[int, int]] = defaultdict(dict)
    metadata: dict[str, list[str]] = defaultdict(list)
    start: dict[TopicPartition, int] = {}
    for tp in partitions:
        om = consumer.committed(tp, metadata=True)
        committed[tp.topic][tp.partition] = om.offset if om else 0
        if om is not None and om.offset >= 0:
            start[tp] = om.offset
            if om.metadata:
                metadata[tp.topic].append(om.metadata)
    for topic, offsets in committed.items():
        store.remove_uncommitted(by_topic[topic], topic, offsets)
        dlq.recover(topic, offsets, metadata[topic])
    return start
