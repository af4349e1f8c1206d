"""The conformance cases C1-C7 and M1 of reference/clarify-and-monitor.md (values re-run with smclarify 0.5)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from clarify import ClarifyInputError, Facet, bias_report, compute_metric, dumps, metric_names
from clarify.bias.report import threshold_split
from clarify.explanations import ndcg

approx = lambda v: pytest.approx(v, abs=1e-12)  # noqa: E731


def metrics_of(report: dict, section: str, facet: str) -> dict[str, dict]:
    """{value_or_threshold: {metric: value or ("error", message)}}"""
    out = {}
    for entry in report[section]["facets"][facet]:
        out[entry["value_or_threshold"]] = {
            m["name"]: ("error", m["error"]) if "error" in m else m["value"] for m in entry["metrics"]}
    return out


# ---- C1 ----------------------------------------------------------------------------------------------
X1 = np.array(list("MFFMFMFFMMFF"))
Y1 = np.array([0, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0])
P1 = np.array([1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0])
C1 = {"CI": -1 / 6, "DPL": -1 / 35, "KL": 0.0016769499068787, "JS": 0.00042058755900407, "LP": 0.0404061017820884,
      "TVD": 1 / 35, "KS": 1 / 35, "DPPL": -6 / 35, "DI": 10 / 7, "DCA": 0.25, "DCR": 1 / 3, "RD": -2 / 3,
      "SD": 1 / 6, "DAR": -0.5, "DRR": 1 / 3, "AD": -13 / 35, "TE": -0.5, "GE": 0.24556213017751485}
FLIPS = {"CI", "DCA", "DCR", "RD", "SD", "DAR", "DRR", "AD", "TE"}


@pytest.mark.parametrize("name", sorted(C1))
def test_c1_direct_calls(name):
    value = compute_metric(name, X1 == "F", label=Y1 == 1, predicted=P1 == 1)
    assert value == pytest.approx(C1[name], abs=1e-12)


@pytest.mark.parametrize("name", sorted(FLIPS | {"DI"}))
def test_c1_swapping_d_flips_signs(name):
    value = compute_metric(name, X1 == "M", label=Y1 == 1, predicted=P1 == 1)
    assert value == pytest.approx(7 / 10 if name == "DI" else -C1[name], abs=1e-12)


def test_c1_report_matches_direct_calls_and_cddl_needs_a_group():
    df = pd.DataFrame({"x": X1, "y": Y1, "yhat": P1})
    r = bias_report(df, "y", [1], [Facet("x", ["F"])], predicted_label="yhat", methods="all", stage="all")
    pre = metrics_of(r, "pre_training_bias_metrics", "x")["F"]
    post = metrics_of(r, "post_training_bias_metrics", "x")["F"]
    for name, want in C1.items():
        assert {**pre, **post}[name] == approx(want), name
    assert pre["CDDL"] == ("error", "Group variable is empty or not provided")
    assert list(pre) == sorted(pre) and list(post) == sorted(post)  # smclarify sorts by name
    assert list(pre) == metric_names("pre_training") and list(post) == metric_names("post_training")


# ---- C2 ----------------------------------------------------------------------------------------------
C2_DF = pd.DataFrame({"x": list("abbb"), "y": [1, 1, 0, 0], "z": [1, 1, 1, 0], "yhat": [1, 0, 0, 1]})
C2_PRE = {
    "a": {"CDDL": -0.375, "CI": 0.5, "DPL": -2 / 3, "JS": 0.08720802396075798, "KL": -0.3662040962227032,
          "KS": 2 / 3, "LP": 2 / 3, "TVD": 1 / 3},
    "b": {"CDDL": 0.625, "CI": -0.5, "DPL": 2 / 3, "JS": 0.08720802396075798, "KL": math.log(3), "KS": 2 / 3,
          "LP": 2 / 3, "TVD": 1 / 3},
}
C2_POST = {
    "a": {"AD": -2 / 3, "CDDPL": -0.75, "DAR": -1, "DCA": 0, "DCR": -1, "DI": 3.0, "DPPL": -2 / 3, "DRR": -0.5,
          "FT": 1.0, "GE": 0.25, "RD": -1, "SD": -0.5, "TE": -1},
    "b": {"AD": 2 / 3, "CDDPL": 0.5, "DAR": 1, "DCA": 0, "DCR": 1, "DI": 1 / 3, "DPPL": 2 / 3, "DRR": 0.5,
          "FT": -2 / 3, "GE": 0.25, "RD": 1, "SD": 0.5, "TE": 1},
}


def test_c2_one_vs_all_with_threshold_label():
    # smclarify reads [0] on this int label as the threshold "> 0"; Ferry asks for the threshold explicitly
    r = bias_report(C2_DF, "y", facets=["x"], label_threshold=0, predicted_label="yhat", group="z", stage="all")
    pre, post = metrics_of(r, "pre_training_bias_metrics", "x"), metrics_of(r, "post_training_bias_metrics", "x")
    assert list(pre) == ["a", "b"]  # order of appearance
    assert r["pre_training_bias_metrics"]["label_value_or_threshold"] == "(0, 1]"
    for v in "ab":
        assert pre[v] == {k: approx(x) for k, x in C2_PRE[v].items()}
        assert post[v] == {k: approx(x) for k, x in C2_POST[v].items()}


def test_c2_category_label_means_values():
    r = bias_report(C2_DF, "y", [0], ["x"], group="z")
    pre = metrics_of(r, "pre_training_bias_metrics", "x")
    assert pre["a"]["CDDL"] == approx(0.375) and pre["a"]["CI"] == approx(0.5) and pre["a"]["DPL"] == approx(2 / 3)
    assert pre["a"]["KL"] == pytest.approx(-0.3662040962227032, abs=1e-12)
    assert pre["b"]["CDDL"] == approx(-0.625) and pre["b"]["DPL"] == approx(-2 / 3)
    assert r["pre_training_bias_metrics"]["label_value_or_threshold"] == "0"


# ---- C3 ----------------------------------------------------------------------------------------------
def test_c3_string_multi_value_labels_and_infinities():
    df = pd.DataFrame({"x": list("abbcc"), "y": list("pqrpq"), "z": [1, 1, 1, 0, 0], "yhat": list("ppqpp")})
    r = bias_report(df, "y", ["p", "q"], ["x"], predicted_label="yhat", group="z", stage="all")
    pre, post = metrics_of(r, "pre_training_bias_metrics", "x"), metrics_of(r, "post_training_bias_metrics", "x")
    want_pre = {
        "a": {"CDDL": -0.3, "CI": 0.6, "DPL": -0.25, "JS": 0.008959191377039405, "KL": -0.21576155433883568,
              "KS": 0.25, "LP": 0.25, "TVD": 0.125},
        "b": {"CDDL": 0.3, "CI": 0.2, "DPL": 0.5, "JS": 0.04247475919884931, "KL": math.log(2), "KS": 0.5,
              "LP": 0.5, "TVD": 0.25},
        "c": {"CDDL": -0.4, "CI": 0.2, "DPL": -1 / 3, "JS": 0.016779594625574157, "KL": -0.2703100720721096,
              "KS": 1 / 3, "LP": 1 / 3, "TVD": 1 / 6},
    }
    for v, want in want_pre.items():
        assert pre[v] == {k: approx(x) for k, x in want.items()}
    common = {"DI": 1.0, "DPPL": 0, "DRR": 0, "RD": 0, "SD": 0, "TE": 0}
    want_post = {"a": {"AD": -0.25, "DAR": -0.25, "DCA": -0.25, "DCR": "-Infinity"},
                 "b": {"AD": 0.5, "DAR": 0.5, "DCA": 0.5, "DCR": "Infinity"},
                 "c": {"AD": -1 / 3, "DAR": -1 / 3, "DCA": -1 / 3, "DCR": "-Infinity"}}
    for v, want in want_post.items():
        for k, x in {**want, **common}.items():
            assert post[v][k] == (x if isinstance(x, str) else approx(x)), (v, k)
        assert post[v]["CDDPL"] == ("error", "No negative labels in set")
    text = dumps(r)
    assert '"-Infinity"' in text and '"Infinity"' in text
    json.loads(text)  # strict JSON: no bare Infinity/NaN


# ---- C4 ----------------------------------------------------------------------------------------------
def test_c4_cddl_with_group():
    x = np.array("M M M F F F F M M M M F M M F M F F M M F M M F".split())
    pos = np.array([int(c) for c in "0 1 1 0 1 0 1 1 1 1 0 1 1 1 0 0 0 0 1 0 0 1 1 0".split()]) == 1
    group = np.array([int(c) for c in "1 0 2 2 1 1 2 1 1 2 0 1 2 0 1 1 1 2 0 1 0 0 1 1".split()])
    assert compute_metric("CDDL", x == "F", label=pos, group=group) == pytest.approx(0.3982142857142857, abs=1e-12)
    assert compute_metric("CDDL", x == "M", label=pos, group=group) == pytest.approx(-0.3982142857142857, abs=1e-12)


# ---- C5 ----------------------------------------------------------------------------------------------
def test_c5_continuous_facet_threshold():
    df = pd.DataFrame({"x": [1, 2, 3, 2, 0], "y": [1, 1, 0, 0, 0], "yhat": [1, 0, 0, 1, 1], "z": [1, 1, 0, 1, 1]})
    r = bias_report(df, "y", facets=[Facet("x", threshold=2)], label_threshold=0, predicted_label="yhat", stage="all")
    pre, post = metrics_of(r, "pre_training_bias_metrics", "x"), metrics_of(r, "post_training_bias_metrics", "x")
    assert list(pre) == ["(2, 3]"]
    want_pre = {"CI": 0.6, "DPL": 0.5, "JS": 0.04247475919884931, "KL": -0.34657359027997264, "KS": 0.5, "LP": 0.5,
                "TVD": 0.25}
    assert {k: v for k, v in pre["(2, 3]"].items() if k != "CDDL"} == {k: approx(v) for k, v in want_pre.items()}
    assert pre["(2, 3]"]["CDDL"][0] == "error"
    want_post = {"AD": -0.75, "DAR": 1 / 3, "DCA": 2 / 3, "DCR": -1.0, "DI": 0.0, "DPPL": 0.75, "DRR": 1.0, "FT": -1.0,
                 "GE": 0.19444444444444456, "RD": 0.5, "SD": 1.0, "TE": -0.5}
    assert {k: v for k, v in post["(2, 3]"].items() if k != "CDDPL"} == {k: approx(v) for k, v in want_post.items()}


# ---- C6 ----------------------------------------------------------------------------------------------
def test_c6_infinities():
    d = np.array(list("aabb")) == "b"
    label, pred = np.array([True, False, True, False]), np.array([False, False, True, True])
    assert compute_metric("DCA", d, label=label, predicted=pred) == math.inf
    assert compute_metric("DCR", d, label=label, predicted=pred) == math.inf
    assert compute_metric("TE", d, label=label, predicted=pred) == -math.inf
    assert compute_metric("DI", d, label=label, predicted=pred) == math.inf


def test_c6_ge_can_exceed_half():
    label, pred = np.array([True, True, True, False]), np.array([False, False, False, True])
    assert compute_metric("GE", np.array([True, False, False, False]), label=label, predicted=pred) == approx(1.5)


def test_c6_distribution_metrics_on_unshared_keys():
    label = np.array([True, True, True, False, False, False])
    facet = np.array([True, False, False, False, False, False])
    assert compute_metric("KL", facet, label=label) == pytest.approx(-0.366516, abs=1e-6)
    assert compute_metric("LP", facet, label=label) == approx(0.6)
    assert compute_metric("JS", facet, label=label) == approx(0.06641431438228168)


def test_c6_empty_facet_errors():
    label = np.array([True, False, True])
    none = np.zeros(3, dtype=bool)
    with pytest.raises(ValueError, match="No instance of common facet found, dataset may be too small"):
        compute_metric("KL", none, label=label)
    with pytest.raises(ValueError, match="No instance of common facet found"):
        compute_metric("JS", none, label=label)
    with pytest.raises(ValueError, match="No instance of common facet found"):
        compute_metric("LP", none, label=label)
    with pytest.raises(ValueError, match="Facet set is empty"):
        compute_metric("DI", none, label=label, predicted=label)
    with pytest.raises(ValueError, match="CI: facet set is empty"):
        compute_metric("CI", none)


@pytest.mark.parametrize("series,threshold,want", [
    (pd.Series([1.0, 2.0, 3.0]), 2.0, "(2.0, 3.0]"),
    (pd.Series([1.0, 2.0, 3.0]), 5.0, "(3.0, 5.0]"),
    (pd.Series([1.0, 2.0, 3.0]), 0.0, "(0.0, 3.0]"),
    (pd.Series([0]), 1, "(0, 1]"),
])
def test_c6_threshold_strings(series, threshold, want):
    assert threshold_split(series, threshold)[1] == want


def test_c6_label_strings_in_reports():
    df = pd.DataFrame({"f": ["u", "v", "u"], "s": ["1", "2", "3"], "c": pd.Series([1, 2, 3]).astype("category"),
                       "b": [True, False, True]})
    lvt = lambda **kw: bias_report(df, facets=["f"], **kw)["pre_training_bias_metrics"]["label_value_or_threshold"]  # noqa: E731
    assert lvt(label="s", label_threshold=2) == "(2, 3]"
    assert lvt(label="c", positive_label_values=[2]) == "2"
    assert lvt(label="b", positive_label_values=[True]) == "True"


# ---- C7 ----------------------------------------------------------------------------------------------
def test_c7_int_label_values_are_values_in_ferry():
    """The deliberate difference: smclarify reads [1] on a 12-row int 0/1 label as "> 1" (no positives, so
    DPL=KL=...=0 and post-training raises); Ferry matches the value 1 and gives C1's numbers."""
    df = pd.DataFrame({"x": X1, "y": Y1, "yhat": P1})
    assert df["y"].dtype == np.int64
    r = bias_report(df, "y", [1], [Facet("x", ["F"])], predicted_label="yhat")
    pre = metrics_of(r, "pre_training_bias_metrics", "x")["F"]
    post = metrics_of(r, "post_training_bias_metrics", "x")["F"]
    assert pre["CI"] == approx(-1 / 6) and pre["DPL"] == approx(-1 / 35) and pre["KL"] == approx(C1["KL"])
    assert post["DI"] == approx(10 / 7)


# ---- bad input -----------------------------------------------------------------------------------------
def test_bad_input_names_the_column():
    df = pd.DataFrame({"x": list("abab"), "y": [1, 0, 1, 0], "s": ["p", "q", "r", "s"]})
    with pytest.raises(ClarifyInputError, match="'nope'"):
        bias_report(df, "y", [1], ["nope"])
    with pytest.raises(ClarifyInputError, match="label column 'lbl'"):
        bias_report(df, "lbl", [1], ["x"])
    with pytest.raises(ClarifyInputError, match="facet column 'x': none of the values"):
        bias_report(df, "y", [1], [Facet("x", ["zzz"])])
    with pytest.raises(ClarifyInputError, match="'s' is not numeric"):
        bias_report(df, "y", [1], [Facet("s", threshold=1)])
    with pytest.raises(ClarifyInputError, match="facet column 'x': threshold"):
        bias_report(df.assign(x=[1, 2, 3, 4]), "y", [1], [Facet("x", threshold=10)])
    with pytest.raises(ClarifyInputError, match="predicted"):
        bias_report(df, "y", [1], ["x"], stage="post")
    with pytest.raises(ValueError, match="Invalid metric_name"):
        bias_report(df, "y", [1], ["x"], methods=["ci"])


def test_methods_subset_and_multiple_facets():
    df = pd.DataFrame({"x": list("abab"), "w": [1.0, 5.0, 2.0, 7.0], "y": [1, 0, 1, 0], "p": [0.9, 0.2, 0.4, 0.7]})
    r = bias_report(df, "y", [1], ["x", Facet("w", threshold=3.0)], probability="p", methods="CI,DI")
    assert [m["name"] for m in r["pre_training_bias_metrics"]["facets"]["w"][0]["metrics"]] == ["CI"]
    assert [m["name"] for m in r["post_training_bias_metrics"]["facets"]["x"][1]["metrics"]] == ["DI"]
    assert list(r["pre_training_bias_metrics"]["facets"]) == ["x", "w"]


# ---- M1 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("baseline,live,want", [
    ({"SAT": .70, "GPA": .50, "Rank": .05}, {"SAT": .10, "GPA": .20, "Rank": .70}, 0.6876396241226223),
    ({"f1": .4, "f2": .3, "f3": .2, "f4": .1}, {"f1": .3, "f2": .4, "f3": .2, "f4": .1}, 0.9496044283456991),
    ({"f1": .4, "f2": .3, "f3": .2, "f4": .1}, {"f1": .1, "f2": .2, "f3": .3, "f4": .4}, 0.7489030296784172),
    ({"f1": .4, "f2": .3, "f3": .2, "f4": .1}, {"f1": .25, "f2": .25, "f3": .25, "f4": .25}, 0.8744515148392082),
    ({"f1": .4, "f2": .3, "f3": .2, "f4": .1}, {"f1": .4, "f2": .3, "f3": .2, "f4": .1}, 1.0),
])
def test_m1_ndcg(baseline, live, want):
    assert ndcg(baseline, live) == pytest.approx(want, abs=1e-12)


def test_values_given_as_text_match_typed_columns():
    """The CLI passes values as text: "1" matches 1 in int, float and category columns, "true" matches True."""
    base = pd.DataFrame({"x": [1, 2, 1, 2], "y": [0, 1, 1, 0], "b": [True, False, True, False]})
    for cast in (lambda s: s, lambda s: s.astype(float), lambda s: s.astype("category")):
        df = base.assign(x=cast(base.x), y=cast(base.y))
        r = bias_report(df, "y", ["1"], [Facet("x", ["2"]), Facet("b", ["true"])])
        for facet in ("x", "b"):
            assert metrics_of(r, "pre_training_bias_metrics", facet)[["2", "true"][facet == "b"]]["CI"] == 0.0
