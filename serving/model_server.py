"""The deployment of a variant that runs on its own replicas: a ModelRunner per replica."""

from __future__ import annotations

import time

from ray import serve

from serving.spec import ModelSpec
from serving.variants import ModelRunner


@serve.deployment
class ModelServer:
    """`<endpoint>.<variant>`; requests arrive gathered by the gateway (infer_each, or infer_many to batch)."""

    def __init__(self, model: ModelSpec, variant: str):
        self.runner = ModelRunner(model, variant)
        self.ready_at = time.time()

    async def metadata(self) -> dict:
        return await self.runner.metadata()

    async def ready(self) -> bool:
        return True

    async def ready_since(self) -> float:
        """When this replica became ready (Unix time): a serverless caller tells a cold start by it."""
        return self.ready_at

    async def infer(self, payload, output_names=None):
        return await self.runner.infer(payload, output_names)

    async def infer_many(self, requests):
        return self.runner.infer_many(requests)

    async def infer_each(self, requests):
        return self.runner.infer_each(requests)
