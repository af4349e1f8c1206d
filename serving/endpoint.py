"""An endpoint: its production variants, the weighted choice between them, and its data capture.

Each variant is a runner with one interface (`infer`, `metadata`, `ready`): a model inside the gateway
replica, or a variant deployment reached through a DeploymentHandle (serving/variants.py).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import time
from functools import partial
from typing import Protocol

from core.capture import RecordFormat
from core.errors import FerryError, bad_request, quote
from serving.capture.sink import CaptureSink
from serving.spec import DataCaptureSpec

class Runner(Protocol):
    async def infer(self, payload, output_names: list[str] | None = None): ...
    async def metadata(self) -> dict: ...
    async def ready(self) -> bool: ...


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


class EndpointCapture:
    """Sampled capture records of one endpoint, queued to its sink; never blocks or fails a request."""

    def __init__(self, spec: DataCaptureSpec, sink: CaptureSink):
        self.format = RecordFormat(spec.capture, spec.csv_content_types, spec.json_content_types)
        self.rate = spec.sampling_percentage / 100.0
        self.sink = sink
        sink.build = self._record_parts

    def sampled(self) -> bool:
        return self.rate >= 1.0 or random.random() < self.rate

    def put(self, exchange, result) -> None:
        """Queue the exchange (or its captured parts when they are at hand, as a tuple of bytes and strings); the
        sink's writer thread builds the record (off the request path)."""
        if exchange.captured_now:
            self.sink.put((*exchange.captured(), result.variant, exchange.inference_id, time.time()))
        else:
            self.sink.put(partial(self._record, exchange, result.variant, time.time()))

    def put_shadow(self, exchange, shadow: str, outputs: dict) -> None:
        """Queue a shadow's answer to a captured request (built off the request path, like the others)."""
        from serving.shadow import shadow_record

        self.sink.put(partial(shadow_record, self.format, exchange, shadow, outputs, time.time()))

    def _record(self, exchange, variant: str, at: float) -> dict:
        return self._record_parts(*exchange.captured(), variant, exchange.inference_id, at)

    def _record_parts(self, in_body: bytes, in_type: str, out_body: bytes, out_type: str, variant: str,
                      inference_id: str | None, at: float) -> dict:
        return self.format.record(variant=variant, input_data=in_body, input_content_type=in_type,
                                  output_data=out_body, output_content_type=out_type,
                                  inference_id=inference_id, inference_time=at)

    def close(self) -> None:
        self.sink.close()


class Endpoint:
    """Variant choice in front of one runner per production variant, and sampled data capture."""

    def __init__(self, name: str, runners: dict[str, Runner], weights: dict[str, float],
                 capture: EndpointCapture | None = None, shadows: list | None = None):
        self.name = name
        self.runners = runners
        self.shadows = shadows or []  # serving.shadow.Shadow
        self.weights = dict(weights)
        self.picker = VariantPicker(weights)
        self.capture = capture
        self._meta: dict[str, dict] = {}

    def set_weights(self, weights: dict[str, float], replace: bool = False) -> None:
        """Live weights (the control plane's): all of them when `replace`, else variants not named keep theirs."""
        given = {n: w for n, w in weights.items() if n in self.runners}
        self.weights = given if replace else {**self.weights, **given}
        self.picker = VariantPicker(self.weights)

    def pick(self, target: str | None) -> tuple[str, Runner]:
        name = self.picker.pick(target)
        if name is None:
            raise FerryError(bad_request(
                f"endpoint {self.name!r} has no variant {quote(target)}; variants: {self.picker.names}"))
        return name, self.runners[name]

    async def metadata(self, variant: str | None = None) -> dict | None:
        name = variant or self.picker.names[0]
        if name not in self.runners:
            return None
        if name not in self._meta:
            self._meta[name] = await self.runners[name].metadata()
        return {**self._meta[name], "versions": self.picker.names}

    async def ready(self, variant: str | None = None, timeout_s: float = 2.0) -> bool:
        names = [variant] if variant else self.picker.names
        if any(n not in self.runners for n in names):
            return False
        try:
            await asyncio.wait_for(asyncio.gather(*(self.runners[n].ready() for n in names)), timeout_s)
            return True
        except Exception:  # noqa: BLE001 - a variant with no healthy replica is simply not ready
            return False

    def describe(self) -> list[dict]:
        """Each variant's weight and where it runs (a pipeline's: where each step runs)."""
        return [{"variant": n, "weight": self.weights[n],
                 "runs": getattr(self.runners[n], "deployment", None) or "in gateway",
                 **({"steps": self.runners[n].placements()} if hasattr(self.runners[n], "placements") else {})}
                for n in self.picker.names] + [
            {"variant": s.name, "weight": f"shadow {100 * s.rate:g} %", "runs": s.runs}
            for s in self.shadows]

    def close(self) -> None:
        if self.capture is not None:
            self.capture.close()
