"""Running a variant's model: `VariantRunner` (onnxruntime + optional dynamic batching), the
`ModelServer` deployment that hosts one per replica, and `RemoteVariant`, the gateway's side of it. An
in-process variant runs its VariantRunner inside the gateway replica instead, saving the network hop.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle

from serving.dataplane import Payload, RoutedResponse
from core.errors import FerryError
from core.onnx import OnnxModel


class VariantRunner:
    """One variant's onnxruntime session; validated requests may be batched with @serve.batch."""

    def __init__(self, model: dict, variant: str, batching: dict | None = None):
        self.variant = variant
        self.model = OnnxModel(model["path"], model.get("input_names"), model.get("output_names"),
                               model.get("intra_op_threads", 1), model.get("inter_op_threads", 1))
        self.batching = batching is not None
        if batching:
            self._run_batch.set_max_batch_size(batching["max_batch_size"])
            self._run_batch.set_batch_wait_timeout_s(batching["batch_wait_timeout_ms"] / 1000.0)

    async def metadata(self) -> dict:
        return {"inputs": [t.as_dict() for t in self.model.inputs],
                "outputs": [t.as_dict() for t in self.model.outputs]}

    async def ready(self) -> bool:
        return True

    def _prepare(self, payload: Payload, output_names: list[str] | None) -> tuple[dict, tuple]:
        feed = (self.model.from_matrix(payload.matrix) if payload.matrix is not None
                else self.model.validate(payload.named or {}, strict_dtype=payload.strict_dtype))
        return feed, tuple(output_names or self.model.output_names)

    async def infer(self, payload: Payload, output_names: list[str] | None = None) -> RoutedResponse:
        try:
            item = self._prepare(payload, output_names)
        except FerryError as err:
            return RoutedResponse(self.variant, error=err.error)
        if self.batching:
            return await self._run_batch(item)
        return self._run([item])[0]

    async def infer_many(self, requests: list[tuple[Payload, list[str] | None]]) -> list[RoutedResponse]:
        """Requests a gateway batched: each validated on its own, the valid ones run together."""
        results: list[RoutedResponse | None] = [None] * len(requests)
        ready: list[tuple[int, tuple[dict, tuple]]] = []
        for i, (payload, names) in enumerate(requests):
            try:
                ready.append((i, self._prepare(payload, names)))
            except FerryError as err:
                results[i] = RoutedResponse(self.variant, error=err.error)
        for (i, _), resp in zip(ready, self._run([item for _, item in ready])):
            results[i] = resp
        return results

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _run_batch(self, items: list[tuple[dict, tuple]]) -> list[RoutedResponse]:
        return self._run(items)

    def _run(self, items: list[tuple[dict, tuple]]) -> list[RoutedResponse]:
        """Run requests with the same input signature as one onnxruntime call, then split the rows."""
        if len(items) == 1:
            (feed, names), = items
            start = time.perf_counter()
            try:
                out = self.model.run(feed, list(names))
            except FerryError as err:
                return [RoutedResponse(self.variant, error=err.error)]
            return [RoutedResponse(self.variant, out, model_seconds=time.perf_counter() - start)]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, (feed, names) in enumerate(items):
            sig = (names,) + tuple((k, v.dtype.str, v.shape[1:]) for k, v in feed.items())
            groups[sig].append(i)
        results: list[RoutedResponse | None] = [None] * len(items)
        for idx in groups.values():
            feeds = [items[i][0] for i in idx]
            names = list(items[idx[0]][1])
            sizes = [next(iter(f.values())).shape[0] for f in feeds]
            merged = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
            start = time.perf_counter()
            try:
                out = self.model.run(merged, names)
            except FerryError as err:
                for i in idx:
                    results[i] = RoutedResponse(self.variant, error=err.error, batch_size=len(items))
                continue
            took = time.perf_counter() - start
            bounds = np.cumsum(sizes)[:-1]
            parts = {k: np.split(v, bounds) for k, v in out.items()}
            for j, i in enumerate(idx):
                results[i] = RoutedResponse(self.variant, {k: parts[k][j] for k in names},
                                            batch_size=len(items), model_seconds=took)
        return results


class RemoteVariant:
    """A variant served by its own ModelServer deployment, with the VariantRunner interface.

    With batching, concurrent requests are gathered here, in the gateway (@serve.batch), and cross to the
    model replica as one call that runs as one onnxruntime call: the network hop is paid once per batch.
    """

    def __init__(self, handle: DeploymentHandle, batching: dict | None = None, scales_to_zero: bool = False):
        self.handle = handle
        self.scales_to_zero = scales_to_zero  # no replica until traffic comes: ready, not down
        self.batching = batching is not None
        if batching:
            self._send_batch.set_max_batch_size(batching["max_batch_size"])
            self._send_batch.set_batch_wait_timeout_s(batching["batch_wait_timeout_ms"] / 1000.0)

    async def metadata(self) -> dict:
        return await self.handle.metadata.remote()

    async def ready(self) -> bool:
        return self.scales_to_zero or await self.handle.ready.remote()

    async def infer(self, payload: Payload, output_names: list[str] | None = None) -> RoutedResponse:
        if self.batching:
            return await self._send_batch((payload, output_names))
        return await self.handle.infer.remote(payload, output_names)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def _send_batch(self, requests: list[tuple[Payload, list[str] | None]]) -> list[RoutedResponse]:
        return await self.handle.infer_many.remote(requests)


@serve.deployment
class ModelServer:
    """The deployment of one production variant: a VariantRunner per replica (batches arrive pre-gathered)."""

    def __init__(self, model: dict, variant: str):
        self.runner = VariantRunner(model, variant)

    async def metadata(self) -> dict:
        return await self.runner.metadata()

    async def ready(self) -> bool:
        return True

    async def infer(self, payload: Payload, output_names: list[str] | None = None) -> RoutedResponse:
        return await self.runner.infer(payload, output_names)

    async def infer_many(self, requests: list[tuple[Payload, list[str] | None]]) -> list[RoutedResponse]:
        return await self.runner.infer_many(requests)
