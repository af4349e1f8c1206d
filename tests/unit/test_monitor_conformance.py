"""Reference conformance cases M1-M6 (shared/reference/clarify-and-monitor.md)."""

import math

import numpy as np
import pandas as pd
import pytest

from monitor import attribution_drift, bias_drift, data_quality, distance, model_quality, sketch
from monitor.baseline import suggest_baseline


# M1: NDCG
@pytest.mark.parametrize("live,expected", [
    ({"f1": .3, "f2": .4, "f3": .2, "f4": .1}, 0.9496044283456991),
    ({"f1": .1, "f2": .2, "f3": .3, "f4": .4}, 0.7489030296784172),
    ({"f1": .25, "f2": .25, "f3": .25, "f4": .25}, 0.8744515148392082),
    ({"f1": .4, "f2": .3, "f3": .2, "f4": .1}, 1.0),
])
def test_m1_ndcg_cases(live, expected):
    base = {"f1": .4, "f2": .3, "f3": .2, "f4": .1}
    assert attribution_drift.ndcg(base, live) == pytest.approx(expected, abs=1e-12)


def test_m1_ndcg_docs_example_is_a_violation():
    base = {"kernel_shap": {"label0": {"global_shap_values": {"SAT": .70, "GPA": .50, "Rank": .05}}}}
    live = {"kernel_shap": {"label0": {"global_shap_values": {"SAT": .10, "GPA": .20, "Rank": .70}}}}
    scores, violations = attribution_drift.check({"explanations": base}, {"explanations": live})
    assert scores["label0"] == pytest.approx(0.6876396241226223, abs=1e-12)
    assert violations == [{"label": "label0", "metric_name": "shap",
                           "constraint_check_type": "feature_attribution_drift_check",
                           "description": f"Feature attribution drift {scores['label0']!r} exceeds threshold 0.9"}]
    swapped = {"kernel_shap": {"label0": {"global_shap_values": {"SAT": .50, "GPA": .70, "Rank": .05}}}}
    assert attribution_drift.check({"explanations": base}, {"explanations": swapped})[1] == []


# M2: categorical L-infinity
def test_m2_categorical_linf():
    b, l = pd.Series({"a": 50, "b": 30, "c": 20}), pd.Series({"a": 20, "b": 30, "c": 50})
    d = distance.categorical(b, l)
    assert d["linf_simple"] == pytest.approx(0.3, abs=1e-12)
    assert d["linf_robust"] == pytest.approx(0.045441558772842894, abs=1e-12)
    d10 = distance.categorical(b * 10, l * 10)
    assert d10["linf_simple"] == pytest.approx(0.3, abs=1e-12)
    assert d10["linf_robust"] == pytest.approx(0.21950155281000755, abs=1e-12)


def _numeric(base, live):
    base, live = np.sort(np.asarray(base, float)), np.sort(np.asarray(live, float))
    s, _ = sketch.build(base)
    return distance.numeric(s, len(base), float(base.std()), live)


# M3: numerical L-infinity
def test_m3_numerical_linf_small():
    d = _numeric(np.arange(1, 11), np.arange(6, 16))
    assert d["linf_simple"] == pytest.approx(0.5, abs=1e-12)
    assert d["linf_robust"] == 0.0
    assert d["ks_pvalue"] == pytest.approx(0.1678, abs=1e-4)


def test_m3_numerical_linf_large():
    d = _numeric(np.arange(0, 1000), np.arange(100, 1100))
    assert d["linf_simple"] == pytest.approx(0.1, abs=1e-12)
    assert d["linf_robust"] == pytest.approx(0.01950155281000758, abs=1e-12)


def test_m3_matches_scipy_ks_on_random_data():
    from scipy import stats
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=700), rng.normal(0.2, 1.1, size=900)
    assert _numeric(a, b)["linf_simple"] == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_compacted_sketch_stays_close_to_exact_ks():
    from scipy import stats
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=200_000), rng.normal(0.05, 1, size=50_000)
    exact = stats.ks_2samp(a, b).statistic
    assert abs(_numeric(a, b)["linf_simple"] - exact) < 2e-3


# M4: model quality, binary
def test_m4_binary_docs_example():
    y = [0, 0, 0, 1]
    yhat = [0, 1, 1, 1]
    m = model_quality.compute("BinaryClassification", y, yhat)
    assert m["confusion_matrix"] == {"0": {"0": 1, "1": 2}, "1": {"0": 0, "1": 1}}
    v = {k: x["value"] for k, x in m.items() if isinstance(x, dict) and "value" in x}
    expected = {"recall": 1.0, "precision": 1 / 3, "accuracy": 0.5, "true_negative_rate": 1 / 3,
                "false_positive_rate": 2 / 3, "false_negative_rate": 0.0, "f1": 0.5, "f2": 5 / 7,
                "f0_5": 0.3846153846153846, "recall_best_constant_classifier": 1.0,
                "precision_best_constant_classifier": 0.25, "accuracy_best_constant_classifier": 0.25,
                "f1_best_constant_classifier": 0.4, "f2_best_constant_classifier": 0.625,
                "f0_5_best_constant_classifier": 0.29411764705882354}
    for k, e in expected.items():
        assert v[k] == pytest.approx(e, abs=1e-7), k
    assert all(math.isnan(x["standard_deviation"]) for x in m.values() if isinstance(x, dict) and "value" in x)


# M5: bias drift rule
def _analysis(value):
    return {"post_training_bias_metrics": {"label": "approved", "facets": {"age_group": [
        {"value_or_threshold": "under_25", "metrics": [{"name": "DPPL", "value": value}]}]}}}


def test_m5_bias_drift_rule():
    assert bias_drift.check(_analysis(0.2), _analysis(0.1))[1] == []
    _, v = bias_drift.check(_analysis(0.2), _analysis(-0.3))
    assert v == [{"facet": "age_group", "facet_value": "under_25", "metric_name": "DPPL",
                  "constraint_check_type": "bias_drift_check",
                  "description": "Value -0.3 does not meet the constraint requirement"}]
    assert bias_drift.metric_value_for_export(math.inf) == 2.348543e108
    assert bias_drift.metric_value_for_export(-math.inf) == -2.348543e108


# M6: every data-quality check type
@pytest.fixture(scope="module")
def baseline():
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame({"count": rng.integers(0, 50, n), "score": rng.normal(size=n),
                       "color": rng.choice(["red", "green", "blue"], n), "gone": rng.normal(size=n)})
    stats, cons = suggest_baseline(df)
    return df, stats, cons


def _checks(violations):
    return {(v["feature_name"], v["constraint_check_type"]) for v in violations}


def test_m6_clean_window_has_no_violations(baseline):
    df, stats, cons = baseline
    window = df.sample(1000, random_state=1)
    r = data_quality.check(window, stats, cons)
    assert r.violations == []
    assert set(r.drift) == {"count", "score", "color", "gone"}


def test_m6_each_check_type_fires_on_its_feature(baseline):
    df, stats, cons = baseline
    w = df.sample(1000, random_state=2).reset_index(drop=True)
    w = w.drop(columns=["gone"])
    w["new_col"] = 1.0
    w["count"] = w["count"].astype(object)
    w.loc[3, "count"] = "many"
    w.loc[[5, 6], "color"] = "purple"
    w.loc[:99, "score"] = np.nan
    w["score"] = w["score"] + 2.0
    r = data_quality.check(w, stats, cons)
    assert _checks(r.violations) == {
        ("gone", "missing_column_check"), ("new_col", "extra_column_check"),
        ("count", "data_type_check"), ("color", "categorical_values_check"),
        ("score", "completeness_check"), ("score", "baseline_drift_check")}
    dt = next(v for v in r.violations if v["constraint_check_type"] == "data_type_check")
    assert dt["description"] == ("Data type match requirement is not met. Expected data type: Integral, "
                                 "Expected match: 100.0%. Observed: Only 99.9% of data is Integral.")
    drift = next(v for v in r.violations if v["constraint_check_type"] == "baseline_drift_check")
    assert drift["description"] == f"Baseline drift distance: {r.drift['score']['distance']!r} exceeds threshold: 0.1"
    assert r.drift["color"]["unseen_values"] == ["purple"]


def test_m6_documented_defaults_tolerate_a_few_mismatches(baseline):
    df, stats, cons = baseline
    loose = {**cons, "monitoring_config": {}}  # documented defaults: thresholds 0.1, Simple
    w = df.sample(1000, random_state=2).reset_index(drop=True)
    w["count"] = w["count"].astype(object)
    w.loc[3, "count"] = "many"
    w.loc[[5, 6], "color"] = "purple"
    assert data_quality.check(w, stats, loose).violations == []


def test_categorical_drift_and_chi_squared(baseline):
    df, stats, cons = baseline
    w = df.sample(1000, random_state=3).reset_index(drop=True)
    w.loc[:399, "color"] = "red"
    assert ("color", "baseline_drift_check") in _checks(data_quality.check(w, stats, cons).violations)
    chi = {**cons, "monitoring_config": {"distribution_constraints": {
        "categorical_drift_method": "ChiSquared", "categorical_comparison_threshold": 0.05}}}
    r = data_quality.check(w, stats, chi)
    assert ("color", "baseline_drift_check") in _checks(r.violations)
    assert r.drift["color"]["method"] == "ChiSquared" and r.drift["color"]["distance"] < 1e-6
    clean = data_quality.check(df.sample(1000, random_state=4), stats, chi)
    assert ("color", "baseline_drift_check") not in _checks(clean.violations)


def test_tiny_window_skips_drift_but_still_checks_types(baseline):
    df, stats, cons = baseline
    w = df.head(8).copy()
    w["score"] = w["score"] + 10
    w["count"] = w["count"].astype(object)
    w.loc[0, "count"] = "x"
    r = data_quality.check(w, stats, cons)
    assert _checks(r.violations) == {("count", "data_type_check")}
    assert "below min_window_rows" in r.notes[0]


def test_robust_ignores_noise_on_a_small_window_that_simple_flags(baseline):
    df, stats, cons = baseline
    w = df.sample(60, random_state=11)
    simple = {**cons, "monitoring_config": {"distribution_constraints": {"comparison_method": "Simple"}}}
    assert any(v["constraint_check_type"] == "baseline_drift_check" for v in data_quality.check(w, stats, simple).violations)
    assert not any(v["constraint_check_type"] == "baseline_drift_check" for v in data_quality.check(w, stats, cons).violations)


def test_linf_with_ties_on_both_sides_matches_scipy():
    from scipy import stats
    rng = np.random.default_rng(5)
    a, b = rng.poisson(3, 1500).astype(float), rng.poisson(3.1, 700).astype(float)
    assert _numeric(a, b)["linf_simple"] == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    big_a, big_b = rng.poisson(3, 300_000).astype(float), rng.poisson(3, 300_000).astype(float)
    assert abs(_numeric(big_a, big_b)["linf_simple"] - stats.ks_2samp(big_a, big_b).statistic) < 2e-3
    assert _numeric(big_a, big_b)["wasserstein_normed"] == pytest.approx(
        stats.wasserstein_distance(big_a, big_b) / big_a.std(), abs=2e-3)
