"""The drift-test registry: each test against scipy or a hand-computed value, and the config that picks one."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from monitor import data_quality, distance, sketch
from monitor.baseline import suggest_baseline
from monitor.constraints import MonitoringConfig


def _numeric(base, live, k=sketch.K):
    base, live = np.sort(np.asarray(base, float)), np.sort(np.asarray(live, float))
    s, _ = sketch.build(base, k)
    return s, distance.numeric(s, len(base), float(base.std()), live)


def test_registry_lists_each_test_once_with_its_kinds():
    assert distance.names(distance.NUMERICAL) == ["linf_simple", "linf_robust", "ks_pvalue", "psi", "jensen_shannon",
                                                  "hellinger", "wasserstein_normed", "energy_distance"]
    assert distance.names(distance.CATEGORICAL) == ["linf_simple", "linf_robust", "chi_squared_pvalue", "psi",
                                                    "jensen_shannon", "hellinger"]
    assert distance.get("hellinger").description.startswith("Hellinger distance")
    with pytest.raises(ValueError, match="unknown drift test 'nope'"):
        distance.get("nope")


def test_hellinger_categorical_by_hand():
    d = distance.categorical(pd.Series({"a": 50, "b": 30, "c": 20}), pd.Series({"a": 20, "b": 30, "c": 50}))
    # 1 - BC with BC = sqrt(.5*.2) + sqrt(.3*.3) + sqrt(.2*.5)
    assert d["hellinger"] == pytest.approx(math.sqrt(1 - (2 * math.sqrt(0.1) + 0.3)), abs=1e-12)
    same = distance.categorical(pd.Series({"a": 5, "b": 5}), pd.Series({"b": 50, "a": 50}))
    disjoint = distance.categorical(pd.Series({"a": 5}), pd.Series({"b": 5}))
    assert same["hellinger"] == 0.0 and disjoint["hellinger"] == pytest.approx(1.0, abs=1e-12)


def test_hellinger_numeric_on_the_shared_bins():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=3000), rng.normal(0.5, 1, size=2000)
    _, d = _numeric(a, b, k=10_000)  # an exact sketch: the baseline's own values
    edges = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), distance.N_BINS + 1)
    p = np.histogram(a, edges)[0] / len(a)
    q = np.histogram(b, edges)[0] / len(b)
    # bins are right-closed, numpy's left-closed: no value of continuous data falls on an inner edge
    assert d["hellinger"] == pytest.approx(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2), abs=1e-12)


@pytest.mark.parametrize("n,m", [(700, 900), (5000, 300_000)])
def test_energy_and_wasserstein_match_scipy_on_exact_sketches(n, m):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=n), rng.normal(0.3, 1.4, size=m)
    _, d = _numeric(a, b, k=10_000)
    assert d["energy_distance"] == pytest.approx(stats.energy_distance(a, b), rel=1e-9)
    assert d["wasserstein_normed"] == pytest.approx(stats.wasserstein_distance(a, b) / a.std(), rel=1e-9)


def test_energy_on_a_compacted_sketch_uses_its_weights():
    rng = np.random.default_rng(3)
    a, b = rng.exponential(size=50_000), rng.exponential(1.2, size=4000)
    s, d = _numeric(a, b)
    assert not s.exact
    assert d["energy_distance"] == pytest.approx(stats.energy_distance(s.values, b, u_weights=s.weights), rel=1e-9)
    assert d["energy_distance"] == pytest.approx(stats.energy_distance(a, b), rel=2e-2)


def test_p_values_drift_below_and_distances_above():
    assert distance.get("ks_pvalue").drifted(0.01, 0.05) and not distance.get("ks_pvalue").drifted(0.2, 0.05)
    assert distance.get("hellinger").drifted(0.2, 0.1) and not distance.get("hellinger").drifted(0.05, 0.1)
    assert not distance.get("psi").drifted(float("nan"), 0.1)


def test_config_picks_registered_tests_and_their_default_thresholds():
    mm = MonitoringConfig.from_json({"distribution_constraints": {"comparison_method": "Robust",
                                                                  "categorical_drift_method": "ChiSquared"}})
    assert (mm.numerical_test, mm.categorical_test, mm.categorical_method_label) == (
        "linf_robust", "chi_squared_pvalue", "ChiSquared")
    h = MonitoringConfig.from_json({"distribution_constraints": {"comparison_method": "energy_distance",
                                                                 "categorical_drift_method": "hellinger"}})
    assert (h.numerical_test, h.categorical_test) == ("energy_distance", "hellinger")
    ks = MonitoringConfig.from_json({"distribution_constraints": {"comparison_method": "ks_pvalue"}})
    assert ks.comparison_threshold == 0.05 and ks.categorical_comparison_threshold == 0.1
    with pytest.raises(ValueError, match="comparison_method: 'chi_squared_pvalue' is not one of Simple, Robust"):
        MonitoringConfig.from_json({"distribution_constraints": {"comparison_method": "chi_squared_pvalue"}})
    with pytest.raises(ValueError, match="categorical_drift_method: 'energy_distance' is not one of LInfinity"):
        MonitoringConfig.from_json({"distribution_constraints": {"categorical_drift_method": "energy_distance"}})


def test_data_quality_check_decides_with_the_chosen_test():
    rng = np.random.default_rng(4)
    n = 4000
    df = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n)})
    stats_json, cons = suggest_baseline(df)
    w = pd.DataFrame({"x": rng.normal(0, 1.6, size=1000), "c": rng.choice(["a", "b", "c"], 1000, p=[.6, .3, .1])})
    cons["monitoring_config"] = {"distribution_constraints": {
        "comparison_method": "hellinger", "comparison_threshold": 0.1, "categorical_drift_method": "hellinger"}}
    r = data_quality.check(w, stats_json, cons)
    assert r.drift["x"]["method"] == "hellinger" and r.drift["x"]["distance"] == r.drift["x"]["hellinger"]
    assert {v["feature_name"] for v in r.violations if v["constraint_check_type"] == "baseline_drift_check"} == {"x", "c"}
    cons["monitoring_config"]["distribution_constraints"]["comparison_threshold"] = 0.5
    r = data_quality.check(w, stats_json, cons)
    assert not [v for v in r.violations if v["constraint_check_type"] == "baseline_drift_check"]


def test_a_monitoring_config_that_says_nothing_is_the_documented_defaults():
    """MonitoringConfig.from_json takes each missing key's default from the dataclass (one home for them)."""
    from monitor.constraints import MonitoringConfig

    assert MonitoringConfig.from_json({}) == MonitoringConfig() == MonitoringConfig.from_json(None)
    assert MonitoringConfig.from_json({"distribution_constraints": {}}) == MonitoringConfig()
