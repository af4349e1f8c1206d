"""Drift distances between a baseline and a window, on whole columns.

Model Monitor's L-infinity distances (deequ): numerical = max |CDF1 - CDF2| over the union of points
(the two-sample KS statistic), categorical = max |PMF1 - PMF2| over the union of values; Robust
subtracts the KS critical value c_alpha * sqrt((n+m)/(n*m)) with c_alpha = 1.8. ChiSquared is deequ's
goodness-of-fit test on the shared categories after regrouping small ones. Alongside: KS p-value, PSI
and Jensen-Shannon distance (30 equal-width bins over both samples, Evidently's way), and the
Wasserstein distance normalised by the baseline std (floored at 0.001).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from monitor.sketch import Sketch

C_ALPHA = 1.8
N_BINS = 30
PSI_EPS = 1e-4


def robust(linf: float, n: float, m: float, c_alpha: float = C_ALPHA) -> float:
    """linf_robust = max(0, linf_simple - c_alpha * sqrt((n + m) / (n * m)))."""
    if n <= 0 or m <= 0:
        return 0.0
    return max(0.0, linf - c_alpha * math.sqrt((n + m) / (n * m)))


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.where(p == 0, PSI_EPS, p)
    q = np.where(q == 0, PSI_EPS, q)
    return float(np.sum((p - q) * np.log(p / q)))


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log(q / m), 0.0).sum()
    return float(math.sqrt(max(0.0, (kl_p + kl_q) / 2)))


EXACT_MERGE_MAX = 200_000


def _linf(base: Sketch, live: np.ndarray) -> float:
    """max |F1 - F2| over the union of points, evaluated on each side's points (no merge needed)."""
    m = len(live)
    at_base = np.abs(base.cdf(base.values) - np.searchsorted(live, base.values, side="right") / m).max()
    last = np.ones(m, dtype=bool)  # the last of each run of equal live values carries its CDF step
    last[:-1] = live[1:] != live[:-1]
    at_live = np.abs(base.cdf(live[last]) - (np.flatnonzero(last) + 1) / m).max()
    return float(max(at_base, at_live))


def _wasserstein(base: Sketch, live: np.ndarray) -> float:
    """Integral of |F1 - F2|: exact over merged points for small samples, else mean |Q1(u) - Q2(u)| at the
    live sample's quantile midpoints (off only in the <= k intervals where the sketch's steps fall)."""
    m = len(live)
    if m + len(base.values) <= EXACT_MERGE_MAX:
        keys = np.sort(np.concatenate([base.values, live]), kind="stable")
        gap = np.abs(base.cdf(keys) - np.searchsorted(live, keys, side="right") / m)
        return float(np.sum(gap[:-1] * np.diff(keys)))
    cum = np.cumsum(base.weights) / base.total
    u = (np.arange(m) + 0.5) / m
    q1 = base.values[np.minimum(np.searchsorted(cum, u, side="left"), len(cum) - 1)]
    return float(np.mean(np.abs(q1 - live)))


def numeric(base: Sketch, base_n: float, base_std: float, live_sorted: np.ndarray) -> dict:
    """Distances between a baseline sketch and the window's sorted present values."""
    m = len(live_sorted)
    if m == 0 or base.total == 0:
        nan = float("nan")
        return {"linf_simple": nan, "linf_robust": nan, "ks_pvalue": nan, "psi": nan,
                "jensen_shannon": nan, "wasserstein_normed": nan}
    linf = _linf(base, live_sorted)
    wasserstein = _wasserstein(base, live_sorted)
    if base.exact and base_n * m <= 1e8:
        pvalue = float(stats.ks_2samp(base.values, live_sorted).pvalue)
    else:
        en = base_n * m / (base_n + m)
        pvalue = float(stats.kstwobign.sf(linf * math.sqrt(en)))
    lo, hi = min(base.values[0], live_sorted[0]), max(base.values[-1], live_sorted[-1])
    edges = np.linspace(lo, hi, N_BINS + 1) if hi > lo else np.array([lo, lo + 1.0])
    cum_b = base.cdf(edges[1:-1])
    p = np.diff(np.concatenate([[0.0], cum_b, [1.0]]))
    q = np.diff(np.concatenate([[0], np.searchsorted(live_sorted, edges[1:-1], side="right"), [m]])) / m
    return {
        "linf_simple": linf,
        "linf_robust": robust(linf, base_n, m),
        "ks_pvalue": pvalue,
        "psi": _psi(p, q),
        "jensen_shannon": _js_distance(p, q),
        "wasserstein_normed": float(wasserstein / max(base_std, 1e-3)),
    }


def chi_squared_pvalue(base_counts: pd.Series, live_counts: pd.Series) -> float:
    """deequ's categorical ChiSquared: p-value of live counts against baseline proportions.

    Only shared categories count; small expected counts are merged (smallest first) until, for two
    categories, all are >= 10 (Cochran), or, for more, at most 20% are < 5 (Yates). NaN when fewer
    than two categories remain.
    """
    shared = base_counts.index.intersection(live_counts.index)
    obs = live_counts.reindex(shared).to_numpy(dtype=np.float64)
    base = base_counts.reindex(shared).to_numpy(dtype=np.float64)
    if len(shared) < 2 or obs.sum() == 0 or base.sum() == 0:
        return float("nan")
    exp = base / base.sum() * obs.sum()
    order = np.argsort(exp, kind="stable")
    exp, obs = list(exp[order]), list(obs[order])
    while len(exp) >= 2 and not _valid(np.asarray(exp)):
        if len(exp) == 2:
            return float("nan")
        exp = [exp[0] + exp[1]] + exp[2:]
        obs = [obs[0] + obs[1]] + obs[2:]
        order = np.argsort(exp, kind="stable")
        exp, obs = [exp[i] for i in order], [obs[i] for i in order]
    return float(stats.chisquare(obs, exp).pvalue)


def _valid(exp: np.ndarray) -> bool:
    if len(exp) == 2:
        return bool(np.all(exp >= 10))
    return bool((exp < 5).mean() <= 0.2)


def categorical(base_counts: pd.Series, live_counts: pd.Series) -> dict:
    """Distances between baseline and window category counts (values as strings)."""
    n, m = float(base_counts.sum()), float(live_counts.sum())
    if n == 0 or m == 0:
        nan = float("nan")
        return {"linf_simple": nan, "linf_robust": nan, "chi_squared_pvalue": nan, "psi": nan,
                "jensen_shannon": nan, "unseen_values": []}
    union = base_counts.index.union(live_counts.index)
    p = base_counts.reindex(union, fill_value=0).to_numpy(dtype=np.float64) / n
    q = live_counts.reindex(union, fill_value=0).to_numpy(dtype=np.float64) / m
    linf = float(np.abs(p - q).max())
    return {
        "linf_simple": linf,
        "linf_robust": robust(linf, n, m),
        "chi_squared_pvalue": chi_squared_pvalue(base_counts, live_counts),
        "psi": _psi(p, q),
        "jensen_shannon": _js_distance(p, q),
        "unseen_values": [str(v) for v in live_counts.index.difference(base_counts.index)],
    }
