"""A deterministic KLL-style quantile sketch (deequ's parameters c=0.64, k=2048).

While a column has at most k values the sketch holds them all (exact). Past that, the sorted values
are compacted level by level, each pass keeping every other item (alternating offset) at twice the
weight, until at most k remain: items of level h weigh 2**h. The rank error stays below about 2/k.
The JSON shape is Model Monitor's: {"parameters": {"c": 0.64, "k": 2048.0}, "data": [[level0], ...]}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K = 2048
C = 0.64


@dataclass(frozen=True)
class Sketch:
    """Sorted items with their weights; exact when every weight is 1."""

    values: np.ndarray
    weights: np.ndarray

    @property
    def total(self) -> float:
        return float(self.weights.sum())

    @property
    def exact(self) -> bool:
        return bool(np.all(self.weights == 1))

    def cdf(self, keys: np.ndarray) -> np.ndarray:
        """Inclusive (<=) weighted CDF at the given keys."""
        cum = np.concatenate([[0.0], np.cumsum(self.weights)])
        return cum[np.searchsorted(self.values, keys, side="right")] / cum[-1]


def build(sorted_values: np.ndarray, k: int = K) -> tuple[Sketch, dict]:
    """Sketch of already sorted values, and its JSON form."""
    data = np.asarray(sorted_values, dtype=np.float64)
    level = 0
    while len(data) > k:
        data = data[level % 2::2]
        level += 1
    levels = [[] for _ in range(level)] + [data.tolist()]
    sk = Sketch(data, np.full(len(data), float(2 ** level)))
    return sk, {"parameters": {"c": C, "k": float(k)}, "data": levels}


def from_json(obj: dict) -> Sketch:
    """Read a sketch from statistics.json (any level layout)."""
    values, weights = [], []
    for h, items in enumerate(obj.get("data", [])):
        values.extend(items)
        weights.extend([2.0 ** h] * len(items))
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, kind="stable")
    return Sketch(v[order], np.asarray(weights, dtype=np.float64)[order])


def buckets(sorted_values: np.ndarray) -> list[dict]:
    """Model Monitor's 10 equal-width buckets from min to max (a value on an inner edge goes up)."""
    lo, hi = float(sorted_values[0]), float(sorted_values[-1])
    edges = np.linspace(lo, hi, 11)
    if hi > lo:
        pos = np.searchsorted(sorted_values, edges[1:-1], side="left")
        counts = np.diff(np.concatenate([[0], pos, [len(sorted_values)]]))
    else:
        counts = np.zeros(10, dtype=np.int64)
        counts[0] = len(sorted_values)
    return [{"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
            for i in range(10)]
