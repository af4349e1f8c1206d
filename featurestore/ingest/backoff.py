"""While a store fails: pause the partitions, keep polling (group membership), retry with backoff, resume."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterable

from featurestore import metrics

log = logging.getLogger(__name__)


def wait_for_store(consumer, ping: Callable[[], None], stop: threading.Event, groups: Iterable[str],
                   first_delay: float = 0.2, max_delay: float = 5.0) -> None:
    """Return once `ping()` succeeds (or `stop` is set); the consumer's partitions stay paused meanwhile."""
    parts = list(consumer.assignment())
    groups = list(groups)
    consumer.pause(*parts)
    for g in groups:
        metrics.PAUSED.labels(g).set(1)
    delay = first_delay
    try:
        while not stop.is_set():
            consumer.poll(timeout_ms=int(delay * 1000))  # paused: no records, keeps the membership
            try:
                ping()
                return
            except Exception as e:
                log.warning("online store still failing: %s", e)
                delay = min(delay * 2, max_delay)
    finally:
        consumer.resume(*parts)
        for g in groups:
            metrics.PAUSED.labels(g).set(0)
