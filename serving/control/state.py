"""The traffic state: what the gateway's `user_config` holds and its `reconfigure` applies."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from core.errors import FerryError, bad_request, not_found


class EndpointTraffic(BaseModel):
    """One endpoint's live traffic: the weight of each production variant."""

    weights: dict[str, float]


class TrafficState(BaseModel):
    """Every endpoint's live traffic, versioned (each change bumps it)."""

    version: int = 0
    endpoints: dict[str, EndpointTraffic] = Field(default_factory=dict)

    def with_weights(self, endpoint: str, weights: dict[str, float]) -> "TrafficState":
        """A new state with `endpoint`'s weights replaced; a 4xx (FerryError) says what is wrong."""
        current = self.endpoints.get(endpoint)
        if current is None:
            raise FerryError(not_found(f"endpoint {endpoint[:80]!r} not found; endpoints: {sorted(self.endpoints)}"))
        unknown = sorted(set(weights) - set(current.weights))
        if unknown:
            raise FerryError(bad_request(f"endpoint {endpoint!r} has no variant(s) {[u[:80] for u in unknown][:10]}; "
                                         f"variants: {sorted(current.weights)}"))
        bad = [n for n, w in weights.items() if not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0]
        if bad:
            raise FerryError(bad_request(f"weights must be finite numbers >= 0; got {[weights[n] for n in bad][:5]}"))
        merged = {**current.weights, **{n: float(w) for n, w in weights.items()}}
        if sum(merged.values()) <= 0:
            raise FerryError(bad_request("at least one variant needs a positive weight"))
        endpoints = {**self.endpoints, endpoint: EndpointTraffic(weights=merged)}
        return TrafficState(version=self.version + 1, endpoints=endpoints)
