"""The deployment of a pipeline step that runs on its own replicas: `<endpoint>.<variant>.<step>`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ray import serve

from core.errors import FerryError, internal_error
from serving.spec import ModelSpec, StepSpec
from serving.steps import make_step

if TYPE_CHECKING:
    from featurestore.settings import FeatureStoreConfig

log = logging.getLogger(__name__)


@serve.deployment
class StepServer:
    """One step per replica; answers a Payload, or its error as a value (errors cross Ray as values)."""

    def __init__(self, spec: StepSpec, models: dict[str, ModelSpec], features: FeatureStoreConfig | None = None):
        self.name = spec.name
        self.step = make_step(spec, models, features)

    async def metadata(self) -> dict:
        return await self.step.metadata()

    async def ready(self) -> bool:
        return await self.step.ready()

    async def run(self, data):
        try:
            return await self.step.run(data)
        except FerryError as err:
            return err.error
        except Exception:  # noqa: BLE001 - a bug here must not look like the caller's fault or a lost replica
            return internal_error(log, f"pipeline step {self.name}")
