"""The traffic state: what the gateway's `user_config` holds and its `reconfigure` applies, plus the
rollouts that change it."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.errors import FerryError, bad_request, not_found


class AddedVariant(BaseModel):
    """A variant the control plane added at run time (a rollout's green fleet): a model in the gateway (`model`,
    `batching`), or any production variant of a deploy file (`variant`: a serving.spec.VariantSpec with the
    `models` it names): a pipeline, steps or a model on their own deployments (each its own application, named
    as the deployment: serving.control.green)."""

    model: dict | None = None  # serving.spec.ModelSpec, as dumped
    batching: dict | None = None
    variant: dict | None = None  # serving.spec.VariantSpec, as dumped
    models: dict[str, dict] = Field(default_factory=dict)  # the ModelSpecs `variant` names


class EndpointTraffic(BaseModel):
    """One endpoint's live traffic: the weight of each production variant, variants added and removed."""

    weights: dict[str, float]
    added: dict[str, AddedVariant] = Field(default_factory=dict)
    removed: list[str] = Field(default_factory=list)


class Alarms(BaseModel):
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
    bias_facets: list[dict[str, Any]] = Field(default_factory=list, description="the bias alarm's facets: "
                                                                                "{name, values | threshold}")
    bias_positive_label_values: list[Any] = Field(default_factory=lambda: [1], description="predicted labels that "
                                                                                           "count as positive")
    input_columns: list[str] | None = Field(None, description="names of green's captured input columns (default: the "
                                                              "drift baseline's, else the model's feature_names)")


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
