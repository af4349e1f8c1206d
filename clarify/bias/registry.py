"""The metric registry: each bias metric is a small pure function on shared group counts, registered by a
decorator that also records its ideal value and its range. The description is the first line of the
docstring, as in smclarify."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

PRE_TRAINING = "pre_training"
POST_TRAINING = "post_training"


@dataclass(frozen=True)
class Metric:
    """A registered metric: its function and what a reader needs to judge a value."""

    name: str
    stage: str
    fn: Callable[..., float]
    description: str
    ideal: float
    range: tuple[float, float]

    def __call__(self, counts) -> float:
        return self.fn(counts)


_REGISTRY: dict[str, Metric] = {}


def description_of(fn: Callable) -> str:
    """The first non-blank line of a function's docstring."""
    if not fn.__doc__ or not fn.__doc__.strip():
        raise ValueError(f"metric {fn.__name__} has no docstring")
    return fn.__doc__.lstrip().split("\n")[0].strip()


def _register(stage: str, ideal: float, lo: float, hi: float):
    def wrap(fn: Callable) -> Callable:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"metric {name} is already registered")
        _REGISTRY[name] = Metric(name, stage, fn, description_of(fn), float(ideal), (float(lo), float(hi)))
        return fn

    return wrap


def pretraining(ideal: float = 0.0, lo: float = -1.0, hi: float = 1.0):
    """Register a pre-training metric (computed from labels only)."""
    return _register(PRE_TRAINING, ideal, lo, hi)


def posttraining(ideal: float = 0.0, lo: float = -1.0, hi: float = 1.0):
    """Register a post-training metric (needs predicted labels)."""
    return _register(POST_TRAINING, ideal, lo, hi)


INF = math.inf


def get(name: str) -> Metric:
    """The registered metric called `name` (exact, case-sensitive, as smclarify)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"Invalid metric_name: {name!r}; metrics should be one of {sorted(_REGISTRY)}") from None


def metrics(stage: str | None = None) -> list[Metric]:
    """Registered metrics of a stage (or all), sorted by name as smclarify's report is."""
    return sorted((m for m in _REGISTRY.values() if stage is None or m.stage == stage), key=lambda m: m.name)


def names(stage: str | None = None) -> list[str]:
    return [m.name for m in metrics(stage)]
