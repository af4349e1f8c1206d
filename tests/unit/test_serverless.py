"""Serverless variants without Ray: the deploy-file section, its Ray Serve options, and the gateway's
throttle and start-up bound (the real-Ray behaviour is tests/integration/test_serverless.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pydantic import ValidationError

from serving.dataplane import ModelResult, Payload
from serving.serverless import ServerlessVariant, deployment_options, gateway_share
from serving.spec import ServerlessSpec, VariantSpec


def test_spec_defaults_and_refusals():
    spec = ServerlessSpec()
    assert (spec.provisioned_concurrency, spec.max_replicas) == (0, 1)
    assert ServerlessSpec(provisioned_concurrency=3, max_concurrency=6).max_replicas == 3
    with pytest.raises(ValidationError, match="above max_concurrency"):
        ServerlessSpec(provisioned_concurrency=5, max_concurrency=2)
    with pytest.raises(ValidationError, match="below provisioned_concurrency"):
        ServerlessSpec(provisioned_concurrency=2, max_replicas=1)
    with pytest.raises(ValidationError, match="drop replicas, in_process"):
        VariantSpec(model="m", serverless={}, replicas=2, in_process=True)


def test_deployment_options_scale_to_zero_with_memory():
    opts = deployment_options(ServerlessSpec(memory_mb=512, max_concurrency=8, max_replicas=2, idle_timeout_s=5), 0.5)
    assert opts["max_ongoing_requests"] == 8
    assert opts["ray_actor_options"] == {"num_cpus": 0.5, "memory": 512 * 1024 * 1024}
    auto = opts["autoscaling_config"]
    assert (auto["min_replicas"], auto["initial_replicas"], auto["max_replicas"]) == (0, 0, 2)
    assert (auto["upscale_delay_s"], auto["downscale_to_zero_delay_s"], auto["target_ongoing_requests"]) == (0, 5, 4)
    assert [gateway_share(ServerlessSpec(max_concurrency=5), g) for g in (1, 2, 8)] == [5, 3, 1]


class _Call:
    def __init__(self, coro_fn):
        self.coro_fn = coro_fn

    def remote(self, *args):
        return self.coro_fn(*args)


class _Handle:
    """Stands in for a DeploymentHandle: a replica that starts after `start_s`."""

    deployment_name = "ep.v"

    def __init__(self, start_s: float):
        self.start_s = start_s
        self.ready_since = _Call(self._ready_since)

    async def _ready_since(self):
        await asyncio.sleep(self.start_s)
        return 1e12  # after every arrival: a cold start


class _Remote:
    variant = "v"
    deployment = "ep.v"

    def __init__(self, start_s: float):
        self.handle = _Handle(start_s)

    async def infer(self, payload, output_names=None):
        await asyncio.sleep(0.05)
        return ModelResult("v", {"y": payload.matrix})


def test_throttles_past_the_share_and_bounds_the_wait():
    async def scenario():
        v = ServerlessVariant(_Remote(0.1), "ep", ServerlessSpec(max_concurrency=2, startup_timeout_s=5), 2)
        results = await asyncio.gather(*(v.infer(Payload(matrix=np.ones((1, 2)))) for _ in range(5)))
        codes = sorted(r.error.error_type if r.error else "ok" for r in results)
        assert codes == ["ThrottlingException"] * 3 + ["ok"] * 2
        slow = ServerlessVariant(_Remote(1.0), "ep", ServerlessSpec(startup_timeout_s=0.1), 4)
        r = await slow.infer(Payload(matrix=np.ones((1, 2))))
        assert r.error.error_type == "ModelNotReadyException" and r.error.status == 429
        assert "still starting" in r.error.message

    asyncio.run(scenario())
