"""Drift tests: one registered ``DriftTest`` per measure of how far a window moved from its baseline.

Each test is a small function on a shared, lazily computed pair (Evidently's StatTest, smclarify's metric
registry): ``NumericPair`` holds the baseline KLL sketch and the window's sorted values, with the L-infinity
gap, the 30 equal-width bins over both samples and the merged CDF gaps computed once; ``CategoricalPair``
holds the two count series and their PMFs over the union of values. A test declares the feature kinds it
applies to, its default threshold and which side of it is drift (distances drift above, p-values below).
The data-quality check, the allowed constraint names and the exported Prometheus labels all read this
registry, so adding a test is one decorated function.

Model Monitor's measures (deequ): L-infinity = max |CDF1 - CDF2| (numerical: the two-sample KS statistic)
or max |PMF1 - PMF2| (categorical); Robust subtracts c_alpha * sqrt((n+m)/(n*m)) with c_alpha = 1.8;
ChiSquared is deequ's goodness-of-fit test on shared categories after regrouping small ones. Alongside:
KS p-value, PSI, Jensen-Shannon and Hellinger distances (on the bins or PMFs), the Wasserstein distance
normalised by the baseline std (floored at 0.001) and the energy distance (scipy's, in the feature's units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from monitor.sketch import Sketch

NUMERICAL, CATEGORICAL = "numerical", "categorical"
C_ALPHA = 1.8
N_BINS = 30
PSI_EPS = 1e-4


@dataclass(frozen=True)
class DriftTest:
    """A registered drift test: ``score(pair)`` is its value; ``drifted`` compares it with a threshold."""

    name: str
    kinds: frozenset[str]
    default_threshold: float
    higher_is_drift: bool
    description: str
    score: Callable[["NumericPair | CategoricalPair"], float]

    def drifted(self, value: float, threshold: float) -> bool:
        """Drift when the value is past the threshold on the test's side (never for NaN)."""
        if math.isnan(value):
            return False
        return value > threshold if self.higher_is_drift else value < threshold

    @property
    def comparison(self) -> str:
        """How a violation says the value relates to the threshold."""
        return "exceeds" if self.higher_is_drift else "is below"


_REGISTRY: dict[str, DriftTest] = {}


def drift_test(name: str, kinds: tuple[str, ...], threshold: float, higher_is_drift: bool = True):
    """Register a test; its description is the first line of the function's docstring."""
    def wrap(fn: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"drift test {name} is already registered")
        doc = (fn.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = DriftTest(name, frozenset(kinds), float(threshold), higher_is_drift, doc, fn)
        return fn
    return wrap


def get(name: str) -> DriftTest:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown drift test {name!r}; registered: {', '.join(_REGISTRY)}") from None


def tests(kind: str | None = None) -> list[DriftTest]:
    """Registered tests (of one feature kind), in registration order."""
    return [t for t in _REGISTRY.values() if kind is None or kind in t.kinds]


def names(kind: str | None = None) -> list[str]:
    return [t.name for t in tests(kind)]


# ---- the shared pairs ------------------------------------------------------------------------------------

def _counts_to_bins(cum_base: np.ndarray, live_pos: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    p = np.diff(np.concatenate([[0.0], cum_base, [1.0]]))
    q = np.diff(np.concatenate([[0], live_pos, [m]])) / m
    return p, q


class NumericPair:
    """A baseline sketch and a window's sorted present values; what numerical tests share."""

    kind = NUMERICAL

    def __init__(self, base: Sketch, base_n: float, base_std: float, live_sorted: np.ndarray):
        self.base, self.n, self.std, self.live = base, float(base_n), float(base_std), live_sorted
        self.m = len(live_sorted)

    @property
    def empty(self) -> bool:
        return self.m == 0 or self.base.total == 0

    @cached_property
    def linf(self) -> float:
        """max |F1 - F2| over the union of points, evaluated on each side's points (no merge needed)."""
        base, live, m = self.base, self.live, self.m
        at_base = np.abs(base.cdf(base.values) - np.searchsorted(live, base.values, side="right") / m).max()
        last = np.ones(m, dtype=bool)  # the last of each run of equal live values carries its CDF step
        last[:-1] = live[1:] != live[:-1]
        at_live = np.abs(base.cdf(live[last]) - (np.flatnonzero(last) + 1) / m).max()
        return float(max(at_base, at_live))

    @cached_property
    def bins(self) -> tuple[np.ndarray, np.ndarray]:
        """Baseline and window shares of 30 equal-width bins over both samples (Evidently's way)."""
        lo, hi = min(self.base.values[0], self.live[0]), max(self.base.values[-1], self.live[-1])
        edges = np.linspace(lo, hi, N_BINS + 1) if hi > lo else np.array([lo, lo + 1.0])
        inner = edges[1:-1]
        return _counts_to_bins(self.base.cdf(inner), np.searchsorted(self.live, inner, side="right"), self.m)

    @cached_property
    def cdf_gaps(self) -> tuple[np.ndarray, np.ndarray]:
        """|F1 - F2| on each interval between consecutive points of both samples, and the intervals' widths.
        The sketch's few values are merged into the sorted window in O(n), no sort; both CDFs are running sums
        along the merged keys (exact where a width is non-zero, the only places that count)."""
        base, k = self.base, len(self.base.values)
        at = np.searchsorted(self.live, base.values) + np.arange(k)  # where the base values land once merged
        keys = np.insert(self.live, at - np.arange(k), base.values)
        base_w = np.zeros(len(keys))
        base_w[at] = base.weights
        live_n = np.ones(len(keys), dtype=np.int64)
        live_n[at] = 0
        gap = np.abs(np.cumsum(base_w)[:-1] / base.total - np.cumsum(live_n)[:-1] / self.m)
        return gap, np.diff(keys)


class CategoricalPair:
    """Baseline and window category counts (values as strings); what categorical tests share."""

    kind = CATEGORICAL

    def __init__(self, base_counts: pd.Series, live_counts: pd.Series):
        self.base_counts, self.live_counts = base_counts, live_counts
        self.n, self.m = float(base_counts.sum()), float(live_counts.sum())

    @property
    def empty(self) -> bool:
        return self.n == 0 or self.m == 0

    @cached_property
    def bins(self) -> tuple[np.ndarray, np.ndarray]:
        """Baseline and window PMFs over the union of values."""
        union = self.base_counts.index.union(self.live_counts.index)
        p = self.base_counts.reindex(union, fill_value=0).to_numpy(dtype=np.float64) / self.n
        q = self.live_counts.reindex(union, fill_value=0).to_numpy(dtype=np.float64) / self.m
        return p, q

    @cached_property
    def linf(self) -> float:
        p, q = self.bins
        return float(np.abs(p - q).max())


# ---- the tests -------------------------------------------------------------------------------------------

BOTH = (NUMERICAL, CATEGORICAL)


def robust(linf: float, n: float, m: float, c_alpha: float = C_ALPHA) -> float:
    """linf_robust = max(0, linf_simple - c_alpha * sqrt((n + m) / (n * m)))."""
    if n <= 0 or m <= 0:
        return 0.0
    return max(0.0, linf - c_alpha * math.sqrt((n + m) / (n * m)))


@drift_test("linf_simple", BOTH, 0.1)
def linf_simple(pair) -> float:
    """L-infinity distance: max |CDF1 - CDF2| (numerical) or max |PMF1 - PMF2| (categorical)."""
    return pair.linf


@drift_test("linf_robust", BOTH, 0.1)
def linf_robust(pair) -> float:
    """L-infinity distance less the KS critical value c_alpha * sqrt((n + m) / (n * m)), floored at 0."""
    return robust(pair.linf, pair.n, pair.m)


@drift_test("ks_pvalue", (NUMERICAL,), 0.05, higher_is_drift=False)
def ks_pvalue(pair: NumericPair) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (exact on an exact sketch, else asymptotic)."""
    if pair.base.exact and pair.n * pair.m <= 1e8:
        return float(stats.ks_2samp(pair.base.values, pair.live).pvalue)
    en = pair.n * pair.m / (pair.n + pair.m)
    return float(stats.kstwobign.sf(pair.linf * math.sqrt(en)))


@drift_test("chi_squared_pvalue", (CATEGORICAL,), 0.1, higher_is_drift=False)
def chi_squared_pvalue(pair: CategoricalPair) -> float:
    """deequ's ChiSquared: p-value of the window's counts against the baseline's proportions.

    Only shared categories count; small expected counts are merged (smallest first) until, for two
    categories, all are >= 10 (Cochran), or, for more, at most 20% are < 5. NaN when fewer than two remain.
    """
    shared = pair.base_counts.index.intersection(pair.live_counts.index)
    obs = pair.live_counts.reindex(shared).to_numpy(dtype=np.float64)
    base = pair.base_counts.reindex(shared).to_numpy(dtype=np.float64)
    if len(shared) < 2 or obs.sum() == 0 or base.sum() == 0:
        return float("nan")
    exp = base / base.sum() * obs.sum()
    order = np.argsort(exp, kind="stable")
    exp, obs = list(exp[order]), list(obs[order])
    while len(exp) >= 2 and not _cochran_ok(np.asarray(exp)):
        if len(exp) == 2:
            return float("nan")
        exp = [exp[0] + exp[1]] + exp[2:]
        obs = [obs[0] + obs[1]] + obs[2:]
        order = np.argsort(exp, kind="stable")
        exp, obs = [exp[i] for i in order], [obs[i] for i in order]
    return float(stats.chisquare(obs, exp).pvalue)


def _cochran_ok(exp: np.ndarray) -> bool:
    if len(exp) == 2:
        return bool(np.all(exp >= 10))
    return bool((exp < 5).mean() <= 0.2)


@drift_test("psi", BOTH, 0.1)
def psi(pair) -> float:
    """Population Stability Index: sum (p - q) ln(p / q), empty bins counted as 1e-4."""
    p, q = pair.bins
    p = np.where(p == 0, PSI_EPS, p)
    q = np.where(q == 0, PSI_EPS, q)
    return float(np.sum((p - q) * np.log(p / q)))


@drift_test("jensen_shannon", BOTH, 0.1)
def jensen_shannon(pair) -> float:
    """Jensen-Shannon distance (natural log): sqrt of the mean KL divergence to the midpoint."""
    p, q = pair.bins
    mid = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / mid), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / mid), 0.0).sum()
    return float(math.sqrt(max(0.0, (kl_p + kl_q) / 2)))


@drift_test("hellinger", BOTH, 0.1)
def hellinger(pair) -> float:
    """Hellinger distance: sqrt(sum (sqrt p - sqrt q)^2 / 2), 0 for equal and 1 for disjoint distributions."""
    p, q = pair.bins
    return float(math.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2))


@drift_test("wasserstein_normed", (NUMERICAL,), 0.1)
def wasserstein_normed(pair: NumericPair) -> float:
    """Wasserstein-1 distance (integral of |F1 - F2|) divided by the baseline std (floored at 0.001)."""
    gap, width = pair.cdf_gaps
    return float(np.sum(gap * width) / max(pair.std, 1e-3))


@drift_test("energy_distance", (NUMERICAL,), 0.1)
def energy_distance(pair: NumericPair) -> float:
    """Energy distance: sqrt(2 * integral of (F1 - F2)^2), in the feature's units (scipy's definition)."""
    gap, width = pair.cdf_gaps
    return float(math.sqrt(2 * np.sum(gap * gap * width)))


# ---- every test of a kind on one pair --------------------------------------------------------------------

def scores(pair: NumericPair | CategoricalPair) -> dict[str, float]:
    """{test name: value} of every test of the pair's kind (NaN for all when a side is empty)."""
    if pair.empty:
        return {t.name: float("nan") for t in tests(pair.kind)}
    return {t.name: t.score(pair) for t in tests(pair.kind)}


def numeric(base: Sketch, base_n: float, base_std: float, live_sorted: np.ndarray) -> dict:
    """Every numerical test between a baseline sketch and the window's sorted present values."""
    return scores(NumericPair(base, base_n, base_std, live_sorted))


def categorical(base_counts: pd.Series, live_counts: pd.Series) -> dict:
    """Every categorical test between baseline and window counts, and the window's values unseen in the baseline."""
    pair = CategoricalPair(base_counts, live_counts)
    unseen = [] if pair.empty else [str(v) for v in live_counts.index.difference(base_counts.index)]
    return {**scores(pair), "unseen_values": unseen}
