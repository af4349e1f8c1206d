"""CaptureSink: a bounded queue drained by a background thread in batches, with bounded retries.

put() never blocks and never raises: a record that finds the queue full is dropped and counted. The
worker writes batches through the backend's write_batch(); a batch that fails is retried with
exponential backoff for up to ``retry_for_s`` seconds (new records wait in the queue meanwhile), then
dropped and counted. Every drop increments ferry_capture_dropped_records_total{endpoint,sink,reason}
and is logged; nothing is lost silently.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod

from serving import metrics

log = logging.getLogger(__name__)

DROPPED = metrics.CAPTURE_DROPPED.client()
WRITTEN = metrics.CAPTURE_WRITTEN.client()
RETRIES = metrics.CAPTURE_RETRIES.client()
QUEUED = metrics.CAPTURE_QUEUED.client()


class CaptureSink(ABC):
    """Base of the capture backends: subclasses implement write_batch (and optionally close_backend)."""

    kind = "base"

    def __init__(self, endpoint: str, max_queue: int = 10_000, batch_size: int = 500,
                 flush_interval_s: float = 0.5, retry_for_s: float = 120.0, max_backoff_s: float = 5.0):
        self.endpoint = endpoint
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_for_s = retry_for_s
        self.max_backoff_s = max_backoff_s
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._close_deadline: float | None = None
        self._labels = {"endpoint": endpoint, "sink": self.kind}
        self._thread = threading.Thread(target=self._run, name=f"capture-{self.kind}-{endpoint}", daemon=True)
        self._thread.start()

    def put(self, record: dict) -> None:
        """Queue one record for writing; never blocks, never raises."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            DROPPED.labels(reason="queue_full", **self._labels).inc()
            log.warning("capture %s/%s: queue full, record dropped", self.endpoint, self.kind)
        except Exception:  # noqa: BLE001 - a capture must never fail a request
            DROPPED.labels(reason="error", **self._labels).inc()
            log.exception("capture %s/%s: record dropped", self.endpoint, self.kind)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued (giving up, counted, after timeout_s), then release the backend."""
        self._close_deadline = time.monotonic() + timeout_s
        self._stop.set()
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
        batch: list[dict] = []
        deadline = time.monotonic() + self.flush_interval_s
        while len(batch) < self.batch_size:
            timeout = deadline - time.monotonic()
            if timeout <= 0 or (self._stop.is_set() and self._queue.empty()):
                break
            try:
                batch.append(self._queue.get(timeout=min(timeout, 0.1)))
            except queue.Empty:
                continue
        QUEUED.labels(**self._labels).set(self._queue.qsize())
        return batch

    def _run(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            if self._past_close_deadline():
                left = self._queue.qsize()
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
