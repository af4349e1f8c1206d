"""Shadow variants: a sampled copy of live traffic runs on each, compared with production, never returned.

The request path only samples the copy and hands it on, bounded (past the bound the copy is dropped, counted),
so a slow or failing shadow never fails the caller. A shadow in the gateway has a queue that a worker task of
the gateway's event loop runs between requests: free for a fast model, but a slow one holds the loop while it
runs (a 1 ms model at 100 % adds up to 1 ms to a caller that keeps the replica busy). A shadow on its own
deployment (`<endpoint>.<shadow>`) is sent each copy through its DeploymentHandle without waiting, at most
`max_queued` copies in flight: the gateway pays the handle call, the model runs in the shadow's replica
(benchmarks/shadow.py measures both). Each answer is compared with production's: the share of rows
whose label agrees (classification: the first integer, boolean or string output) and the absolute
difference of the first floating-point output (regression). With data capture on, the shadow's answer is
captured too, under the shadow's name and the production request's inference id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from core.capture import RecordFormat
from core.payloads import v2
from serving.metrics import ShadowStats
from serving.spec import ShadowVariantSpec

log = logging.getLogger(__name__)


def compare(production: dict[str, np.ndarray], shadow: dict[str, np.ndarray], stats: ShadowStats) -> None:
    """Add one answer's agreement (label outputs) and absolute difference (float outputs) to `stats`."""
    names = [n for n in production if n in shadow]
    labels = [n for n in names if np.asarray(production[n]).dtype.kind in "iubOUS"]
    floats = [n for n in names if np.asarray(production[n]).dtype.kind == "f"]
    first = next(iter(production.values()), None)
    rows = len(first) if first is not None and np.ndim(first) else 1
    stats.rows += rows
    if labels:
        a, b = np.asarray(production[labels[0]]), np.asarray(shadow[labels[0]])
        if a.shape == b.shape:
            stats.agreed += int((a.reshape(len(a), -1) == b.reshape(len(b), -1)).all(axis=1).sum()) if a.ndim else int(a == b)
    if floats:
        a, b = np.asarray(production[floats[0]], dtype=np.float64), np.asarray(shadow[floats[0]], dtype=np.float64)
        if a.shape == b.shape:
            stats.abs_diff += float(np.abs(a - b).sum())
            stats.values += a.size


class Shadow:
    """One shadow variant of an endpoint: its queue of copies and the worker task that runs them."""

    BATCH = 64  # copies per call in a thread or to the shadow's deployment
    GATHER_S = 0.005  # how long a batch waits for more copies (a shadow's answer is never awaited by a caller)

    def __init__(self, endpoint: str, spec: ShadowVariantSpec, runner, stats: ShadowStats, capture=None,
                 thread: bool = False):
        """`runner`: a ModelRunner in the gateway, or a RemoteVariant (the shadow's own deployment); `thread`:
        a ModelRunner runs the copies on a thread of its own rather than on the event loop."""
        self.endpoint = endpoint
        self.name = spec.name
        self.runner = runner
        self.rate = spec.sampling_percentage / 100.0
        self.max_queued = spec.max_queued
        self.stats = stats
        self.capture = capture  # the endpoint's EndpointCapture, or None
        self.deployment = getattr(runner, "deployment", None)  # its own deployment's name, or None (in gateway)
        self.mode = "deployment" if self.deployment else "thread" if thread else "event loop"
        self._queue: deque = deque()
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._busy = 0  # copies taken from the queue, not yet answered
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"shadow-{self.name}") if thread else None

    @property
    def runs(self) -> str:
        return self.deployment or ("in gateway (thread)" if self._pool else "in gateway")

    @property
    def pending(self) -> int:
        """Copies queued or being run."""
        return len(self._queue) + self._busy

    def offer(self, payload, output_names, production, exchange) -> None:
        """Queue a copy of a request that production answered (sampled; dropped and counted when full)."""
        if self.rate < 1.0 and random.random() >= self.rate:
            return
        if len(self._queue) + self._busy >= self.max_queued:
            self.stats.dropped += 1
            return
        self._queue.append((payload, output_names, production, exchange))
        if self._worker is None:
            self._wake = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if self.mode == "event loop":  # one copy at a time, requests let in between copies
                    batch = [self._queue.popleft()]
                else:  # a batch per thread hand-off or handle call: its cost shared by the copies
                    if len(self._queue) < self.BATCH:
                        await asyncio.sleep(self.GATHER_S)
                    batch = [self._queue.popleft() for _ in range(min(self.BATCH, len(self._queue)))]
                self._busy = len(batch)
                try:
                    await self._batch(batch)
                except Exception:  # noqa: BLE001 - a shadow must never affect production
                    self.stats.errors += len(batch)
                    log.exception("shadow %s/%s failed", self.endpoint, self.name)
                finally:
                    self._busy = 0
                await asyncio.sleep(0)

    async def _batch(self, batch: list[tuple]) -> None:
        requests = [(payload, names) for payload, names, _, _ in batch]
        start = time.perf_counter()
        if self.mode == "event loop":
            results = [await self.runner.infer(*requests[0])]
        elif self.mode == "thread":
            results = await asyncio.get_running_loop().run_in_executor(self._pool, self.runner.infer_many, requests)
        else:
            results = await self.runner.infer_many(requests)
        took = time.perf_counter() - start
        for (_, _, production, exchange), result in zip(batch, results):
            self.stats.latency.observe(took)
            if result.error is not None:
                self.stats.errors += 1
                continue
            self.stats.ok += 1
            compare(production.outputs, result.outputs, self.stats)
            if self.capture is not None:
                self.capture.put_shadow(exchange, self.name, result.outputs)


def shadow_record(fmt: RecordFormat, exchange, shadow: str, outputs: dict, at: float) -> dict:
    """The capture record of a shadow's answer: production's input, the shadow's outputs (V2 binary)."""
    in_body, in_type, _, _ = exchange.captured()
    out_body, out_type = v2.binary_document("outputs", outputs)
    return fmt.record(variant=shadow, input_data=in_body, input_content_type=in_type, output_data=out_body,
                      output_content_type=out_type, inference_id=exchange.inference_id, inference_time=at)
