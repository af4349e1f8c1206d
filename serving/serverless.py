"""Serverless variants (SageMaker's ServerlessConfig) on Ray Serve autoscaling.

A serverless variant is its own deployment `<endpoint>.<variant>`, which Ray Serve scales from
`provisioned_concurrency` replicas (0 by default) up to `max_replicas` on the requests in flight, with no
upscale delay, and back down after `idle_timeout_s` without traffic; `memory_mb` is each replica's Ray
`memory` resource and `max_concurrency` its `max_ongoing_requests`.

In the gateway, `ServerlessVariant` stands in front of the variant's handle:
- past `max_concurrency` requests in flight (this gateway replica's share of it), a request is refused at
  once: 429 ThrottlingException (gRPC RESOURCE_EXHAUSTED);
- when the variant may have no replica (none answered within the idle timeout), a request first waits for
  one, up to `startup_timeout_s` (Ray Serve buffers it meanwhile: nothing is dropped). Past the bound it
  gets 429 ModelNotReadyException, and the replica goes on starting for the retry. A request that waited
  for a replica which became ready after it arrived is a cold start: ferry_serverless_cold_start_seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from core.errors import InferenceError, model_not_ready, throttled, unavailable
from serving.dataplane import ModelResult, Payload
from serving.metrics import COLD_START
from serving.spec import ServerlessSpec
from serving.variants import RemoteVariant

log = logging.getLogger(__name__)
COLD_STARTS = COLD_START.client()


def deployment_options(spec: ServerlessSpec, num_cpus: float) -> dict:
    """The Ray Serve options of a serverless variant's deployment."""
    return {
        "max_ongoing_requests": spec.max_concurrency,
        "ray_actor_options": {"num_cpus": num_cpus, "memory": spec.memory_mb * 1024 * 1024},
        "autoscaling_config": {
            "min_replicas": spec.provisioned_concurrency,
            "initial_replicas": spec.provisioned_concurrency,
            "max_replicas": spec.max_replicas,
            "target_ongoing_requests": spec.max_concurrency / spec.max_replicas,
            "upscale_delay_s": 0.0,
            "downscale_delay_s": spec.idle_timeout_s,
            "downscale_to_zero_delay_s": spec.idle_timeout_s,
        },
    }


def gateway_share(spec: ServerlessSpec, gateway_replicas: int) -> int:
    """The requests in flight one gateway replica lets through (max_concurrency shared out)."""
    return max(1, math.ceil(spec.max_concurrency / gateway_replicas))


class ServerlessVariant:
    """A serverless variant seen from the gateway: concurrency cap, bounded wait for a cold start."""

    def __init__(self, remote: RemoteVariant, endpoint: str, spec: ServerlessSpec, limit: int):
        self.remote = remote
        self.variant = remote.variant
        self.deployment = remote.deployment
        self.spec = spec
        self.limit = limit
        self.in_flight = 0
        self._warm_until = 0.0  # monotonic: a replica answered less than idle_timeout_s ago
        self._cold_starts = COLD_STARTS.labels(endpoint, self.variant)

    async def metadata(self) -> dict:
        return await self.remote.metadata()

    async def ready(self) -> bool:
        return await self.remote.ready()

    async def infer(self, payload: Payload, output_names: list[str] | None = None) -> ModelResult:
        if self.in_flight >= self.limit:
            return ModelResult(self.variant, error=throttled(
                f"serverless variant {self.variant} has {self.spec.max_concurrency} requests in flight "
                "(max_concurrency); retry later"))
        self.in_flight += 1
        try:
            if time.monotonic() >= self._warm_until:
                error = await self._wait_for_replica()
                if error is not None:
                    return ModelResult(self.variant, error=error)
            result = await self.remote.infer(payload, output_names)
            if result.error is None:
                self._warm_until = time.monotonic() + self.spec.idle_timeout_s
            return result
        finally:
            self.in_flight -= 1

    async def _wait_for_replica(self) -> InferenceError | None:
        """Wait, at most startup_timeout_s, until a replica answers; count the wait if it was a cold start."""
        arrived = time.time()
        probe = asyncio.ensure_future(_resolve(self.remote.handle.ready_since.remote()))
        done, _ = await asyncio.wait({probe}, timeout=self.spec.startup_timeout_s)
        if not done:  # left running: its place in Ray's queue keeps the replica starting for the retry
            probe.add_done_callback(_consume)
            return model_not_ready(f"serverless variant {self.variant} is still starting (waited "
                                   f"{self.spec.startup_timeout_s:g} s, startup_timeout_s); retry")
        try:
            ready_at = probe.result()
        except Exception as err:  # noqa: BLE001 - a replica that failed to start: retryable
            log.warning("serverless variant %s did not start: %s", self.variant, type(err).__name__)
            return unavailable(f"serverless variant {self.variant} could not start a replica: {type(err).__name__}")
        if ready_at > arrived:
            self._cold_starts.observe(time.time() - arrived)
        return None


async def _resolve(response):
    return await response


def _consume(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved
