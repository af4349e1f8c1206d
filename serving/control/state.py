"""The traffic state: what the gateway's `user_config` holds and its `reconfigure` applies, plus the
rollouts that change it."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field, field_serializer, model_validator

from core.errors import FerryError, bad_request, not_found
from core.schema import Strict
from monitor.spec import FacetSpec
from serving.spec import BatchingSpec, ModelSpec, VariantSpec


class AddedVariant(BaseModel):
    """A variant the control plane added at run time (a rollout's green fleet): any production variant of a
    deploy file, with the models it names; a model in the gateway, a pipeline, steps or a model on their own
    deployments (each its own application, named as the deployment: serving.control.green)."""

    variant: VariantSpec
    models: dict[str, ModelSpec]  # the ModelSpecs `variant` names

    @field_serializer("variant")
    def _as_given(self, v: VariantSpec, info) -> dict:
        """The fields given, not the defaults: where a variant runs depends on what was set
        (serving.deploy.in_process), and the gateways' user_config and the saved state must keep that."""
        return v.model_dump(mode=info.mode, exclude_unset=True)


class EndpointTraffic(BaseModel):
    """One endpoint's live traffic: the weight of each production variant, variants added and removed."""

    weights: dict[str, float]
    added: dict[str, AddedVariant] = Field(default_factory=dict)
    removed: list[str] = Field(default_factory=list)


class Alarms(Strict):
    """What rolls a rollout back, checked through every bake window on the green variants' traffic."""

    max_error_rate: float = Field(0.01, ge=0, le=1, description="5xx and 424 (ModelError) share of green's requests")
    max_client_error_increase: float = Field(0.05, ge=0, le=1, description="green's 4xx share above blue's")
    max_p99_s: float | None = Field(None, gt=0, description="green's p99 latency")
    min_requests: int = Field(20, ge=1, description="rates are judged once green has this many requests in the window")
    prometheus_url: str | None = None
    prometheus_alerts: list[str] = Field(default_factory=list, description="alert names that roll back when firing")
    drift_baseline: str | None = Field(None, description="a data-quality baseline folder: a violation on green's "
                                                         "captured inputs rolls back")
    bias_baseline: str | None = Field(None, description="a bias baseline folder (analysis.json of blue's predictions): "
                                                        "green's DPPL or DI farther from the ideal rolls back")
    bias_facets: list[FacetSpec] = Field(default_factory=list, description="the bias alarm's facets: "
                                                                                "{name, values | threshold}")
    bias_positive_label_values: list[Any] = Field(default_factory=lambda: [1], description="predicted labels that "
                                                                                           "count as positive")
    input_columns: list[str] | None = Field(None, description="names of green's captured input columns (default: the "
                                                              "drift baseline's, else the model's feature_names)")


class GreenVariant(Strict):
    """One variant of a rollout's green fleet: a model run in the gateway (`model`, `batching`), or any
    production variant of a deploy file (`variant`, with the `models` it names)."""

    model: ModelSpec | None = None
    batching: BatchingSpec | None = None
    variant: VariantSpec | None = Field(None, description="a pipeline, a model on its own deployment, a "
                                                          "serverless variant: as in a deploy file")
    models: dict[str, ModelSpec] = Field(default_factory=dict, description="the models `variant` names, by name")
    weight: float = Field(1.0, ge=0, description="its share of green's traffic")

    @model_validator(mode="after")
    def _one_shape(self) -> "GreenVariant":
        if (self.model is None) == (self.variant is None):
            raise ValueError("give exactly one of model (with batching) or variant (with models)")
        if self.variant is not None:
            if self.batching is not None:
                raise ValueError("batching: set it in variant")
            missing = sorted(self.needs() - set(self.models))
            if missing:
                raise ValueError(f"models: variant names model(s) {missing} that models does not give")
        elif self.models:
            raise ValueError("models: only with variant")
        return self

    def needs(self) -> set[str]:
        v = self.variant
        return {v.model} if v.model else {s.model for s in v.pipeline if s.model}

    def added(self, name: str) -> AddedVariant:
        """As the traffic state holds it: a variant named `name` and the models it runs."""
        if self.model is not None:
            fields = {"name": name, "model": self.model.name}
            variant = VariantSpec(**fields, batching=self.batching) if self.batching else VariantSpec(**fields)
            return AddedVariant(variant=variant, models={self.model.name: self.model})
        return AddedVariant(variant=self.variant.model_copy(update={"name": name}),
                            models={n: self.models[n] for n in sorted(self.needs())})


class RolloutRequest(Strict):
    """The body of POST /control/endpoints/{name}/rollouts, validated once where it arrives (a 400 names the
    field); the control plane and the CLI use this model."""

    green: dict[str, GreenVariant] = Field(min_length=1, description="the new variants, by name")
    strategy: Literal["all-at-once", "canary", "linear"]
    canary_percent: float = Field(10.0, gt=0, lt=100, description="canary: green's share of the first step")
    linear_step: float = Field(20.0, gt=0, le=100, description="linear: percent of the traffic per step")
    wait_interval_s: float = Field(30.0, ge=0, description="bake time of each step")
    termination_wait_s: float = Field(30.0, ge=0, description="blue stays idle this long before it is removed")
    max_duration_s: float = Field(3600.0, gt=0)
    alarms: Alarms = Field(default_factory=Alarms)


class Rollout(BaseModel):
    """A blue/green rollout of one endpoint, persisted so that it survives a restart of the control plane."""

    endpoint: str
    strategy: Literal["all-at-once", "canary", "linear"]
    blue: dict[str, float]  # variant -> weight before the rollout
    green: dict[str, float]
    shares: list[float]  # green's traffic share at each step; the last is 1.0
    step: int = 0
    wait_interval_s: float
    termination_wait_s: float
    deadline: float  # epoch seconds (max_duration)
    alarms: Alarms = Field(default_factory=Alarms)
    status: Literal["running", "completed", "rolled_back"] = "running"
    reason: str | None = None
    started_at: float
    finished_at: float | None = None
    history: list[str] = Field(default_factory=list)


class TrafficState(BaseModel):
    """Every endpoint's live traffic, versioned (each change bumps it), and the rollouts."""

    version: int = 0
    endpoints: dict[str, EndpointTraffic] = Field(default_factory=dict)
    rollouts: dict[str, Rollout] = Field(default_factory=dict)

    def endpoint(self, name: str) -> EndpointTraffic:
        current = self.endpoints.get(name)
        if current is None:
            raise FerryError(not_found(f"endpoint {name[:80]!r} not found; endpoints: {sorted(self.endpoints)}"))
        return current

    def with_weights(self, endpoint: str, weights: dict[str, float], replace: bool = False) -> "TrafficState":
        """A new state with `endpoint`'s weights changed (all of them when `replace`); a 4xx says what is wrong."""
        current = self.endpoint(endpoint)
        unknown = sorted(set(weights) - set(current.weights))
        if unknown:
            raise FerryError(bad_request(f"endpoint {endpoint!r} has no variant(s) {[u[:80] for u in unknown][:10]}; "
                                         f"variants: {sorted(current.weights)}"))
        bad = [n for n, w in weights.items() if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0]
        if bad:
            raise FerryError(bad_request(f"weights must be finite numbers >= 0; got {[weights[n] for n in bad][:5]}"))
        merged = {n: float(w) for n, w in weights.items()} if replace else {**current.weights, **weights}
        if sum(merged.values()) <= 0:
            raise FerryError(bad_request("at least one variant needs a positive weight"))
        return self._with(endpoint, current.model_copy(update={"weights": merged}))

    def with_variants(self, endpoint: str, added: dict[str, AddedVariant] | None = None,
                      removed: list[str] = ()) -> "TrafficState":
        """Variants added at weight 0, or removed with their weight."""
        current = self.endpoint(endpoint)
        weights = {n: w for n, w in current.weights.items() if n not in removed}
        weights |= {n: 0.0 for n in (added or {})}
        adds = {n: v for n, v in {**current.added, **(added or {})}.items() if n not in removed}
        gone = sorted(set(current.removed) | (set(removed) - set(current.added)))
        return self._with(endpoint, EndpointTraffic(weights=weights, added=adds, removed=gone))

    def _with(self, endpoint: str, traffic: EndpointTraffic) -> "TrafficState":
        return self.model_copy(update={"version": self.version + 1,
                                       "endpoints": {**self.endpoints, endpoint: traffic}})
