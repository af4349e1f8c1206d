"""An inference pipeline: a variant whose model is 2-15 steps run in order (SageMaker's serial inference
pipeline), each step's output the next step's input (what flows between steps: serving/steps.py).

`PipelineRunner` has the runner interface of serving/variants.py (`infer`, `metadata`, `ready`), so the
data plane routes, meters and captures a pipeline endpoint like any other. A step runs in the gateway
replica (the default: no hop) or as its own deployment `<endpoint>.<variant>.<step>` (a `StepServer`,
serving/step_server.py) reached through `RemoteStep`, scaled on its own. A failing step's error names it and
keeps its status: a step's 4xx stays a 4xx.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from core.errors import FerryError, bad_request, internal_error, throttled, unavailable
from serving.dataplane import ModelResult, Payload
from serving.spec import ModelSpec, VariantSpec
from serving.steps import MATRIX, Step, decoded_strings, make_step, step_error
from serving.variants import RemoteDeployment

if TYPE_CHECKING:
    from featurestore.settings import FeatureStoreConfig
    from serving.variants import Remote

log = logging.getLogger(__name__)


class RemoteStep(RemoteDeployment):
    """A step served by its own StepServer deployment, seen from the gateway."""

    async def run(self, data: Payload) -> Payload:
        try:
            out = await self.handle.run.remote(data)
        except Exception as err:  # noqa: BLE001 - backpressure or a lost replica: retryable, not the client's fault
            from ray.exceptions import RayTaskError
            from ray.serve.exceptions import BackPressureError

            if isinstance(err, RayTaskError):  # the replica is up and its code raised: a bug, not an outage
                raise FerryError(internal_error(log, f"deployment {self.deployment}")) from None
            log.warning("step deployment %s unavailable: %s", self.deployment, type(err).__name__)
            if isinstance(err, BackPressureError):
                raise FerryError(throttled(f"deployment {self.deployment} is at its queue limit; retry later")) from None
            raise FerryError(unavailable(f"deployment {self.deployment} is unavailable: {type(err).__name__}")) from None
        if not isinstance(out, Payload):
            raise FerryError(out)  # the step's error, carried as a value
        return out


class PipelineRunner:
    """The steps of one variant, run in order."""

    def __init__(self, variant: str, steps: list[tuple[str, Step]]):
        self.variant = variant
        self.steps = steps

    @classmethod
    def build(cls, endpoint: str, spec: VariantSpec, models: dict[str, ModelSpec], remote: dict[str, Remote],
              features: FeatureStoreConfig | None) -> "PipelineRunner":
        """Steps in this process, or RemoteSteps for those with a deployment in `remote` (keyed
        "<endpoint>.<variant>.<step>", as serving/deploy.py binds them)."""
        steps = []
        for s in spec.pipeline:
            target = remote.get(f"{endpoint}.{spec.name}.{s.name}")
            steps.append((s.name, RemoteStep(target.handle, target.scales_to_zero) if target
                          else make_step(s, models, features)))
        return cls(spec.name, steps)

    def placements(self) -> list[dict]:
        """Each step and where it runs: "in gateway" or its deployment's name."""
        return [{"name": n, "runs": getattr(s, "deployment", None) or "in gateway"} for n, s in self.steps]

    async def metadata(self) -> dict:
        """The first step's inputs, the last step's outputs (empty for Python steps), and the steps."""
        first, last = await self.steps[0][1].metadata(), await self.steps[-1][1].metadata()
        return {"inputs": first["inputs"], "outputs": last["outputs"], "steps": self.placements()}

    async def ready(self) -> bool:
        for _, step in self.steps:
            if not await step.ready():
                return False
        return True

    async def infer(self, payload: Payload, output_names: list[str] | None = None) -> ModelResult:
        start = time.perf_counter()
        data = decoded_strings(payload)
        for name, step in self.steps:
            try:
                data = await step.run(data)
            except FerryError as err:
                return ModelResult(self.variant, error=step_error(name, err.error))
        outputs = data.named if data.named is not None else {MATRIX: data.matrix}
        if output_names:
            unknown = [n for n in output_names if n not in outputs]
            if unknown:
                return ModelResult(self.variant, error=bad_request(
                    f"unknown output(s) {[str(u)[:80] for u in unknown][:10]}; the pipeline gives {list(outputs)[:20]}"))
            outputs = {n: outputs[n] for n in output_names}
        return ModelResult(self.variant, outputs, model_seconds=time.perf_counter() - start)
