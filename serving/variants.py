"""How a production variant's model runs: in the gateway replica (`ModelRunner`), or as its own Ray Serve
deployment (`ModelServer`) reached from the gateway through `RemoteVariant`. Both answer `infer`,
`metadata` and `ready`, with errors as `ModelResult` values.

In-process is the default (no network hop: the fastest shape for small models); a variant that needs its
own replicas, autoscaling, resources or failure isolation gets its own deployment, named
``<endpoint>.<variant>``. Concurrent requests to a variant on its own deployment are gathered in the gateway
and sent as one DeploymentHandle call (the hop costs milliseconds of Ray's CPU on both sides, whatever it
carries): without `batching` the replica runs each request of the call on its own (`infer_each`: the model
sees exactly what it would see alone), with `batching` as one onnxruntime run (`infer_many`). A lone request
goes at once; calls grow with the load (serving.batching).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import FerryError, bad_request, internal_error, throttled, unavailable
from core.onnx import OnnxModel
from serving.batching import AdaptiveBatcher
from serving.dataplane import ModelResult, Payload
from serving.spec import BatchingSpec, ModelSpec

log = logging.getLogger(__name__)


# A batching runner's event loop hands each batch to its model thread and waits, the GIL let go, until the thread
# has started it (at most this long; then the loop goes on). A thread woken while the loop is busy otherwise gets the
# GIL only when the loop goes idle: uvloop lets go of it and takes it back around each of its callbacks, and each
# time the waiting thread wakes too late to take it and starts its switch interval again. The batch then started a
# median 1.6 ms (90th percentile 4.2 ms) after it was handed over at c=32 on the ~1 ms MLP, against 40 us with the wait.
HANDOFF_TIMEOUT_S = 0.005


class ModelRunner:
    """One variant's onnxruntime session, validated inputs, optional adaptive batching."""

    def __init__(self, model: ModelSpec, variant: str, batching: BatchingSpec | None = None):
        self.variant = variant
        self.model = OnnxModel(model.path, model.input_names, model.output_names,
                               model.intra_op_threads, model.inter_op_threads)
        self._meta = {"inputs": [t.as_dict() for t in self.model.inputs],
                      "outputs": [t.as_dict() for t in self.model.outputs]}
        self._batcher = None
        if batching is not None:
            pool = ThreadPoolExecutor(1, thread_name_prefix=f"model-{variant}")

            async def run_in_thread(items):
                started = threading.Lock()
                started.acquire()
                done = asyncio.get_running_loop().run_in_executor(pool, self._run_started, started, items)
                started.acquire(timeout=HANDOFF_TIMEOUT_S)  # the loop lets go of the GIL until the thread holds it
                return await done

            self._batcher = AdaptiveBatcher(run_in_thread, batching.max_batch_size,
                                            batching.batch_wait_timeout_ms / 1000.0)

    async def metadata(self) -> dict:
        return self._meta

    async def ready(self) -> bool:
        return True

    def prepare(self, payload: Payload, output_names: list[str] | None) -> tuple[dict, tuple]:
        """The session's feed for a decoded payload; FerryError (4xx) when it does not fit the model.

        Only the client's payload is read here, so any other exception is caused by it: logged (a check is
        missing), and a 400 rather than a 5xx."""
        try:
            feed = (self.model.from_matrix(payload.matrix) if payload.matrix is not None
                    else self.model.validate(payload.named or {}, strict_dtype=payload.strict_dtype))
        except FerryError:
            raise
        except Exception as err:  # noqa: BLE001
            log.exception("variant %s: an input the checks let through", self.variant)
            raise FerryError(bad_request(f"the input does not fit the model ({type(err).__name__})")) from None
        return feed, tuple(output_names) if output_names else self.model.default_outputs

    async def infer(self, payload: Payload, output_names: list[str] | None = None) -> ModelResult:
        try:
            item = self.prepare(payload, output_names)
        except FerryError as err:
            return ModelResult(self.variant, error=err.error)
        if self._batcher is not None:
            return await self._batcher.submit(item)
        return self.run_one(*item)

    def run_one(self, feed: dict, names: tuple) -> ModelResult:
        start = time.perf_counter()
        try:
            out = self.model.run(feed, names)
        except FerryError as err:
            return ModelResult(self.variant, error=err.error)
        return ModelResult(self.variant, out, model_seconds=time.perf_counter() - start)

    def infer_each(self, requests: list[tuple[Payload, list[str] | None]]) -> list[ModelResult]:
        """Requests gathered elsewhere, each validated and run on its own (as `infer` without batching)."""
        results = []
        for payload, names in requests:
            try:
                item = self.prepare(payload, names)
            except FerryError as err:
                results.append(ModelResult(self.variant, error=err.error))
                continue
            results.append(self.run_one(*item))
        return results

    def infer_many(self, requests: list[tuple[Payload, list[str] | None]]) -> list[ModelResult]:
        """Requests gathered elsewhere: each validated on its own, the valid ones run together."""
        results: list[ModelResult | None] = [None] * len(requests)
        ready: list[tuple[int, tuple[dict, tuple]]] = []
        for i, (payload, names) in enumerate(requests):
            try:
                ready.append((i, self.prepare(payload, names)))
            except FerryError as err:
                results[i] = ModelResult(self.variant, error=err.error)
        for (i, _), res in zip(ready, self.run_many([item for _, item in ready])):
            results[i] = res
        return results

    def _run_started(self, started: threading.Lock, items: list[tuple[dict, tuple]]) -> list[ModelResult]:
        started.release()
        return self.run_many(items)

    def run_many(self, items: list[tuple[dict, tuple]]) -> list[ModelResult]:
        """Run items with the same input signature as one onnxruntime call, then split the rows."""
        if len(items) == 1:
            return [self.run_one(*items[0])]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, (feed, names) in enumerate(items):
            groups[(names,) + tuple((k, v.dtype.str, v.shape[1:]) for k, v in feed.items())].append(i)
        results: list[ModelResult | None] = [None] * len(items)
        for idx in groups.values():
            feeds = [items[i][0] for i in idx]
            names = items[idx[0]][1]
            sizes = [next(iter(f.values())).shape[0] for f in feeds]
            merged = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
            start = time.perf_counter()
            try:
                out = self.model.run(merged, names)
            except FerryError as err:
                for i in idx:
                    results[i] = ModelResult(self.variant, error=err.error, batch_size=len(idx))
                continue
            took = time.perf_counter() - start
            bounds = np.cumsum(sizes)[:-1]
            parts = {k: np.split(v, bounds) for k, v in out.items()}
            for j, i in enumerate(idx):
                results[i] = ModelResult(self.variant, {k: parts[k][j] for k in names},
                                         batch_size=len(idx), model_seconds=took)
        return results


@dataclass(frozen=True)
class Remote:
    """A variant, shadow or pipeline step with its own deployment, as serving/deploy.py binds it (or
    serving.control.green finds it) for the gateway."""

    handle: Any  # the bound deployment (a DeploymentHandle in the replica)
    scales_to_zero: bool = False  # no replica until traffic comes: ready, not down


GATHER_MAX = 32  # requests per gathered call to a variant deployment without batching


# what a hop carries over Ray Serve's gRPC transport: only Ferry's own importable types (Payload, ModelResult,
# InferenceError, numpy arrays, dicts), which plain pickle writes and reads in a third to a half of cloudpickle's
# time (Ray's default, made for closures and classes defined on the fly, which a hop never carries)
HOP_SERIALIZATION = {"request_serialization": "pickle", "response_serialization": "pickle"}


def hop(handle):
    """The handle as the gateway calls a deployment of its own: over Ray Serve's gRPC transport when the replica's
    environment asks for it (RAY_SERVE_USE_GRPC_BY_DEFAULT, one of Ferry's throughput switches, serving/deploy.py),
    its requests and results written with plain pickle.

    Ray applies that switch to the handles a process makes after importing Ray Serve with it set, so a handle
    bound by the driver (`ferry up` imports Ray Serve before it sets Ray's environment) arrives in the replica
    on Ray's actor-call path. On this machine the gRPC transport halves the CPU a hop costs on both sides, and
    pickle instead of cloudpickle takes another ~50-75 us off each side at c=1 (README, Performance). Errors come
    back as on the actor path (Ray's gRPC handle re-raises a replica's exception as its RayTaskError, a lost
    replica as ActorUnavailableError), and Ferry never asks a hop for an ObjectRef."""
    if os.environ.get("RAY_SERVE_USE_GRPC_BY_DEFAULT") == "1":
        return handle.options(_by_reference=False, **HOP_SERIALIZATION)
    return handle


class RemoteDeployment:
    """A deployment of its own (a variant's, a shadow's or a pipeline step's), seen from the gateway.

    Its handle is made on first use, in the replica's event loop: `options()` starts the handle's router, which
    needs the running loop, and a green variant's runner is built in a worker thread."""

    def __init__(self, handle, scales_to_zero: bool = False):
        self._bound, self._handle = handle, None
        self.deployment = handle.deployment_name
        self.scales_to_zero = scales_to_zero  # no replica until traffic comes: ready, not down

    @property
    def handle(self):
        if self._handle is None:
            self._handle = hop(self._bound)
        return self._handle

    async def metadata(self) -> dict:
        return await self.handle.metadata.remote()

    async def ready(self) -> bool:
        return self.scales_to_zero or await self.handle.ready.remote()


class RemoteVariant(RemoteDeployment):
    """A variant served by its own ModelServer deployment, seen from the gateway.

    With `gather`, concurrent requests go as one handle call (`max_in_flight` calls at a time: a couple per
    replica keeps each busy while the next call is on its way); without it, one call per request (a variant
    with a queue limit counts requests, so it is not gathered)."""

    def __init__(self, handle, variant: str, batching: BatchingSpec | None = None, scales_to_zero: bool = False,
                 max_in_flight: int = 4, gather: bool = False):
        super().__init__(handle, scales_to_zero)
        self.variant = variant
        self._methods: dict = {}  # method name -> the handle for it (handle.<name> makes a new handle per call)
        self._batcher = None
        if batching is not None:
            self._batcher = AdaptiveBatcher(self._send_many, batching.max_batch_size,
                                            batching.batch_wait_timeout_ms / 1000.0, max_in_flight)
        elif gather:
            self._batcher = AdaptiveBatcher(self._send_each, GATHER_MAX, 0.0, max_in_flight, lone_now=True)

    async def infer(self, payload: Payload, output_names: list[str] | None = None) -> ModelResult:
        try:
            if self._batcher is not None:
                return await self._batcher.submit((payload, output_names))
            return await self._method("infer").remote(payload, output_names)
        except Exception as err:  # noqa: BLE001 - backpressure or a lost replica: retryable, not the client's fault
            from ray.exceptions import RayTaskError
            from ray.serve.exceptions import BackPressureError

            if isinstance(err, RayTaskError):  # the replica is up and its code raised: a bug, not an outage
                return ModelResult(self.variant, error=internal_error(log, f"variant {self.variant}'s replica"))
            log.warning("variant %s unavailable: %s", self.variant, type(err).__name__)
            if isinstance(err, BackPressureError):
                return ModelResult(self.variant, error=throttled(f"variant {self.variant} is at its queue limit; "
                                                                 "retry later"))
            return ModelResult(self.variant, error=unavailable(f"variant {self.variant} is unavailable: "
                                                               f"{type(err).__name__}"))

    async def infer_many(self, requests: list[tuple[Payload, list[str] | None]]) -> list[ModelResult]:
        """Requests gathered by the caller, in one handle call; errors (a lost replica, backpressure) raise."""
        return await self.handle.infer_many.remote(requests)

    def _method(self, name: str):
        handle = self._methods.get(name)
        if handle is None:
            handle = self._methods[name] = getattr(self.handle, name)
        return handle

    async def _send_many(self, requests: list[tuple[Payload, list[str] | None]]) -> list[ModelResult]:
        return await self._method("infer_many").remote(requests)

    async def _send_each(self, requests: list[tuple[Payload, list[str] | None]]) -> list[ModelResult]:
        return await self._method("infer_each").remote(requests)
