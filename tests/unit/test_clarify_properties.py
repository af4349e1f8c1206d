"""Property tests (hypothesis) for the bias metrics' invariants."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clarify import bias_report, compute_metric, json_value, parse_value
from clarify.bias import registry

SIGN_FLIPS = ["CI", "DPL", "DPPL", "DCA", "DCR", "RD", "SD", "DAR", "DRR", "AD", "TE"]
CDD = ["CDDL", "CDDPL"]
SYMMETRIC = ["JS", "LP", "TVD", "KS", "GE"]
ALL_COUNT_METRICS = [n for n in registry.names() if n != "FT"]

@st.composite
def tables(draw, min_rows=1):
    n = draw(st.integers(min_value=min_rows, max_value=40))
    bools = st.lists(st.booleans(), min_size=n, max_size=n)
    d, label, pred = (np.array(draw(bools)) for _ in range(3))
    group = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    return d, label, pred, group


def outcome(name, d, label, pred, group):
    try:
        return compute_metric(name, d, label=label, predicted=pred, group=group)
    except ValueError as exc:
        return ("error", type(exc))


@settings(max_examples=300, deadline=None)
@given(tables())
def test_swapping_d_and_a_flips_the_signed_metrics(t):
    d, label, pred, group = t
    for name in SIGN_FLIPS:
        x, y = outcome(name, d, label, pred, group), outcome(name, ~d, label, pred, group)
        if isinstance(x, tuple):
            assert isinstance(y, tuple), name
        else:
            assert y == -x or (x == 0 and y == 0), (name, x, y)
    for name, index in zip(CDD, (label, pred)):
        x, y = outcome(name, d, label, pred, group), outcome(name, ~d, label, pred, group)
        assert isinstance(x, tuple) == isinstance(y, tuple)
        # CDD takes a share as 0 when a group has no positives (negatives), so it flips exactly only when
        # every group has both
        both = all(index[group == g].any() and (~index[group == g]).any() for g in np.unique(group))
        if not isinstance(x, tuple) and both:
            assert y == pytest.approx(-x, abs=1e-12), name


@settings(max_examples=300, deadline=None)
@given(tables())
def test_swapping_leaves_symmetric_metrics_and_inverts_di(t):
    d, label, pred, group = t
    for name in SYMMETRIC:
        x, y = outcome(name, d, label, pred, group), outcome(name, ~d, label, pred, group)
        assert (x == y) if not isinstance(x, tuple) else isinstance(y, tuple), (name, x, y)
    di, di_swapped = outcome("DI", d, label, pred, group), outcome("DI", ~d, label, pred, group)
    if not isinstance(di, tuple) and 0 < di < math.inf:
        assert di_swapped == pytest.approx(1 / di, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(tables())
def test_identical_groups(t):
    """d and a holding the same rows: DI = 1 (when anything is predicted positive), CI = 0, differences 0.
    (Not CDD: smclarify counts a group without positives or negatives as a share of 0 on that side.)"""
    _, label, pred, group = t
    d = np.r_[np.ones(len(label), bool), np.zeros(len(label), bool)]
    lab, prd, grp = np.r_[label, label], np.r_[pred, pred], np.r_[group, group]
    assert compute_metric("CI", d) == 0.0
    if prd.any():
        assert compute_metric("DI", d, predicted=prd) == 1.0
    for name in ["DPL", "DPPL", "DCA", "DCR", "RD", "SD", "DAR", "DRR", "AD", "TE", "JS", "LP", "TVD", "KS", "KL"]:
        assert outcome(name, d, lab, prd, grp) == 0.0, name


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 50))
def test_ci_of_equal_groups_is_zero(n):
    assert compute_metric("CI", np.r_[np.ones(n, bool), np.zeros(n, bool)]) == 0.0


@settings(max_examples=200, deadline=None)
@given(tables())
def test_values_stay_in_their_documented_ranges(t):
    d, label, pred, group = t
    for name in ["CI", "DPL", "DPPL", "RD", "SD", "DAR", "DRR", "AD", "CDDL", "CDDPL", "JS", "TVD", "KS", "LP"]:
        v = outcome(name, d, label, pred, group)
        if not isinstance(v, tuple):
            lo, hi = registry.get(name).range
            assert lo - 1e-12 <= v <= hi + 1e-12, (name, v)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(min_rows=2), st.sampled_from(["u", "v", "w"]))
def test_report_agrees_with_direct_calls(t, _):
    """The report's shared one-pass counts give what each metric gives on its own masks."""
    d, label, pred, group = t
    facet = np.where(d, "u", np.where(group % 2 == 0, "v", "w"))
    df = pd.DataFrame({"f": facet, "y": label.astype(int), "yhat": pred.astype(int), "g": group})
    r = bias_report(df, "y", [1], ["f"], predicted_label="yhat", group="g", stage="all",
                    methods=ALL_COUNT_METRICS)
    for section in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        for entry in r[section]["facets"]["f"]:
            mask = facet == entry["value_or_threshold"]
            for m in entry["metrics"]:
                want = outcome(m["name"], mask, label, pred, group)
                if isinstance(want, tuple):
                    assert "error" in m, m
                else:
                    assert parse_value(m["value"]) == want, (m, want)


@given(st.floats(allow_nan=False))
def test_json_values_round_trip(v):
    assert parse_value(json_value(v)) == v
