"""CaptureSink: a bounded in-memory queue that a background thread writes out in batches, with retries.

put() never blocks and never raises, and costs the request path one deque append: the writer thread wakes
every `flush_interval_s` (not per record), builds what was queued as a callable, or as a tuple of bytes and
strings for `build` (which the owner sets; such a tuple is left alone by the garbage collector while it waits),
into its record, and writes batches through the backend's write_batch(). A batch that fails is retried with exponential
backoff for up to ``retry_for_s`` seconds (new records wait in the queue meanwhile), then dropped and
counted. A record that finds the queue full is dropped and counted. Every drop increments
ferry_capture_dropped_records_total{endpoint,sink,reason} and is logged; nothing is lost silently.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

from serving import metrics

log = logging.getLogger(__name__)

DROPPED = metrics.CAPTURE_DROPPED.client()
WRITTEN = metrics.CAPTURE_WRITTEN.client()
RETRIES = metrics.CAPTURE_RETRIES.client()
QUEUED = metrics.CAPTURE_QUEUED.client()


class CaptureSink(ABC):
    """Base of the capture backends: subclasses implement write_batch (and optionally close_backend). A backend a
    deploy file can name also has its typed config (`config_class`) and `from_config`, and a line in
    serving.capture.factory.SINKS."""

    kind = "base"

    def __init__(self, endpoint: str, max_queue: int = 10_000, batch_size: int = 500,
                 flush_interval_s: float = 0.2, retry_for_s: float = 120.0, max_backoff_s: float = 5.0):
        self.endpoint = endpoint
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_for_s = retry_for_s
        self.max_backoff_s = max_backoff_s
        self._queue: deque = deque()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._full = 0
        self._close_deadline: float | None = None
        self._labels = {"endpoint": endpoint, "sink": self.kind}
        self.build: Callable[..., dict] | None = None  # turns a queued tuple into its record
        self._dropped_full = DROPPED.labels(reason="queue_full", **self._labels)
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.kind}-{endpoint}", daemon=True)
        self._thread.start()

    def put(self, record: dict | Callable[[], dict] | tuple) -> None:
        """Queue one record (or a callable, or `build`'s arguments, which the writer thread turns into one); never
        blocks, never raises."""
        queued = len(self._queue)
        if queued >= self.max_queue:
            self._dropped_full.inc()
            self._full += 1
            if self._full % 1000 == 1:  # the counter has every drop; the log is a reminder, not a flood
                log.warning("capture %s/%s: queue full, %d records dropped so far", self.endpoint, self.kind,
                            self._full)
            return
        self._queue.append(record)
        if queued >= self.batch_size and not self._stop.is_set() and not self._wake.is_set():
            self._wake.set()  # a full batch is waiting: no need to sleep out the flush interval

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued (giving up, counted, after timeout_s), then release the backend."""
        self._close_deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s + 5.0)
        self.close_backend()

    def _past_close_deadline(self) -> bool:
        return self._close_deadline is not None and time.monotonic() >= self._close_deadline

    @abstractmethod
    def write_batch(self, records: list[dict]) -> list[dict]:
        """Write records; return those that failed (to be retried); raise if none could be written."""

    def close_backend(self) -> None:
        """Release connections or files."""

    def _take_batch(self) -> list[dict]:
        """Up to batch_size queued items, each built into its record (what cannot be built is counted)."""
        batch = []
        while self._queue and len(batch) < self.batch_size:
            item = self._queue.popleft()
            if type(item) is tuple or callable(item):
                try:
                    item = self.build(*item) if type(item) is tuple else item()
                except Exception:  # noqa: BLE001 - a capture must never fail a request; what is lost is counted
                    DROPPED.labels(reason="unencodable", **self._labels).inc()
                    log.exception("capture %s/%s: record could not be built", self.endpoint, self.kind)
                    continue
            batch.append(item)
        QUEUED.labels(**self._labels).set(len(self._queue))
        return batch

    def _run(self) -> None:
        while True:
            if not self._queue:
                if self._stop.is_set():
                    return
                self._wake.wait(self.flush_interval_s)
                if not self._stop.is_set():
                    self._wake.clear()
                continue
            if self._past_close_deadline():
                left = len(self._queue)
                DROPPED.labels(reason="closed", **self._labels).inc(left)
                log.error("capture %s/%s: closed with %d records unwritten", self.endpoint, self.kind, left)
                return
            batch = self._take_batch()
            if batch:
                self._write_with_retries(batch)

    def _write_with_retries(self, batch: list[dict]) -> None:
        started, backoff = time.monotonic(), 0.1
        while True:
            try:
                failed = self.write_batch(batch)
            except Exception as err:  # noqa: BLE001 - any backend failure is retried
                failed, reason = batch, err
            else:
                reason = "some records were not acknowledged"
            WRITTEN.labels(**self._labels).inc(len(batch) - len(failed))
            if not failed:
                return
            if time.monotonic() - started >= self.retry_for_s or self._past_close_deadline():
                DROPPED.labels(reason="retries_exhausted", **self._labels).inc(len(failed))
                log.error("capture %s/%s: %d records dropped after retrying %.0f s: %s",
                          self.endpoint, self.kind, len(failed), self.retry_for_s, reason)
                return
            RETRIES.labels(**self._labels).inc()
            log.warning("capture %s/%s: %d records not written (%s); retrying in %.1f s",
                        self.endpoint, self.kind, len(failed), reason, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            batch = failed
