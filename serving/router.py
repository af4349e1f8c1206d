"""An endpoint's router: picks a production variant (weights or the target-variant header) and calls it.

The router lives in the gateway replica (no extra network hop). Each variant is either its own Ray Serve
deployment reached through a DeploymentHandle (the default: variants scale and fail independently) or,
with ``in_process: true``, a model session inside the gateway replica itself (no hop at all).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import random


from serving.capture import build_record, make_sink
from serving.capture.sink import DROPPED
from serving.dataplane import RoutedRequest, RoutedResponse
from core.errors import bad_request
from serving.spec import DataCaptureSpec

log = logging.getLogger(__name__)


class VariantPicker:
    """Weighted random choice of a production variant; a named target always wins."""

    def __init__(self, weights: dict[str, float], seed: int | None = None):
        self.names = list(weights)
        total = sum(weights.values())
        self.cum = list(itertools.accumulate(weights[n] / total for n in self.names))
        self.rng = random.Random(seed)

    def pick(self, target: str | None = None) -> str | None:
        if target is not None:
            return target if target in self.names else None
        if len(self.names) == 1:
            return self.names[0]
        i = bisect.bisect_right(self.cum, self.rng.random())  # scalar work: plain Python beats numpy here
        return self.names[min(i, len(self.names) - 1)]


class EndpointRouter:
    """Variant choice in front of one model deployment per production variant, and sampled data capture."""

    def __init__(self, endpoint: dict, variants: dict, kafka_bootstrap: str | None = None):
        """`variants` maps each variant name to a VariantRunner or RemoteVariant (same interface)."""
        self.name = endpoint["name"]
        self.variants = variants
        self.picker = VariantPicker({v["name"]: v["initial_weight"] for v in endpoint["variants"]})
        self._meta: dict[str, dict] = {}
        self.capture_spec = DataCaptureSpec(**endpoint.get("data_capture") or {})
        self.sink = make_sink(self.capture_spec, self.name, kafka_bootstrap) if self.capture_spec.enabled else None
        self._rng = random.Random()

    def sampled(self) -> bool:
        """Whether this request is captured (SageMaker's sampling percentage)."""
        return self.sink is not None and self._rng.random() * 100 < self.capture_spec.sampling_percentage

    def capture(self, req: RoutedRequest, resp: RoutedResponse, output: bytes | str | None,
                output_type: str | None) -> None:
        """Queue a capture record; never blocks or fails the request (what cannot be kept is counted)."""
        try:
            record = build_record(self.capture_spec, variant=resp.variant, input_data=req.body,
                                  input_content_type=req.content_type, output_data=output,
                                  output_content_type=output_type, inference_id=req.inference_id)
        except Exception:  # noqa: BLE001 - a capture must never fail a request
            DROPPED.labels(endpoint=self.name, sink=self.sink.kind, reason="unencodable").inc()
            log.exception("capture %s: record could not be built", self.name)
            return
        self.sink.put(record)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()

    async def infer(self, req: RoutedRequest) -> RoutedResponse:
        variant = self.picker.pick(req.target_variant)
        if variant is None:
            return RoutedResponse(req.target_variant or "", error=bad_request(
                f"endpoint {self.name!r} has no variant {req.target_variant!r}; variants: {self.picker.names}"))
        return await self.variants[variant].infer(req.payload, req.output_names)

    async def metadata(self, variant: str | None = None) -> dict | None:
        name = variant or self.picker.names[0]
        if name not in self.variants:
            return None
        if name not in self._meta:
            self._meta[name] = await self.variants[name].metadata()
        return {**self._meta[name], "versions": self.picker.names}

    async def ready(self, variant: str | None = None, timeout_s: float = 2.0) -> bool:
        names = [variant] if variant else self.picker.names
        if any(n not in self.variants for n in names):
            return False
        try:
            await asyncio.wait_for(asyncio.gather(*(self.variants[n].ready() for n in names)), timeout_s)
            return True
        except Exception:  # a variant with no healthy replica is simply not ready
            return False
