"""Runs AWS's smclarify on cases described in a JSON spec; executed by the smclarify venv's python, never
imported by Ferry (smclarify breaks on pandas 3). Usage: python smclarify_runner.py spec.json out.json

spec: {"data": "file.parquet", "cases": [{"id", "facet", "facet_mode": "values"|"threshold"|"all",
"facet_values": [...], "label", "label_mode": "values"|"threshold", "positive": [...], "predicted": col|null,
"group": col|null, "stage": "pre_training"|"post_training", "methods": ["all"], "drop": [cols],
"smc_drop": [cols dropped for smclarify only], "data": optional per-case parquet, "repeat": runs (default 1),
"kind": "report" (default) | "ft"}]}
Values are matched as values (columns cast to category) and thresholds as thresholds (cast to float), the
semantics Ferry uses. A "report" case times smclarify's ``bias_report`` call; an "ft" case (categorical facet,
post-training) times smclarify's Flip Test metric itself, ``FT(df, sensitive_facet_index,
positive_predicted_label_index)`` once per facet entry, on the inputs ``bias_report`` would give it (built with
smclarify's own preprocessing functions, outside the timing). Output: {id: {"report": [...] (of the last run) |
"ft": {value_or_threshold: FT}, "seconds": [one per run]} | {"error": str}}.
"""

import json
import logging
import sys
import time
import traceback

import pandas as pd
from smclarify.bias import report as smc_report
from smclarify.bias.metrics import common, posttraining
from smclarify.bias.report import FacetColumn, LabelColumn, StageType, bias_report

logging.disable(logging.CRITICAL)


def _typed(s, mode):
    return s.astype("category") if mode in ("values", "all") else pd.to_numeric(s)


def _runs(fn, repeat):
    """fn() run ``repeat`` times: its last result and each run's seconds."""
    seconds, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        seconds.append(time.perf_counter() - t0)
    return out, seconds


def run_case(data, case):
    if case.get("data"):
        data = pd.read_parquet(case["data"])
    df = data.drop(columns=case.get("drop", []) + case.get("smc_drop", []))
    label = _typed(data[case["label"]], case["label_mode"])
    df[case["facet"]] = _typed(df[case["facet"]], case["facet_mode"])
    facet_values = case.get("facet_values") if case["facet_mode"] != "all" else None
    predicted = None
    if case.get("predicted"):
        predicted = LabelColumn(case["predicted"], _typed(data[case["predicted"]], case["label_mode"]))
    if case.get("kind", "report") == "ft":
        return run_ft(df, case["facet"], facet_values, LabelColumn(case["label"], label, case["positive"]), predicted,
                      case.get("repeat", 1))
    group = data[case["group"]] if case.get("group") else None
    report, seconds = _runs(lambda: bias_report(
        df, FacetColumn(case["facet"], facet_values), LabelColumn(case["label"], label, case["positive"]),
        StageType(case["stage"]), predicted, metrics=case.get("methods", ["all"]), group_variable=group),
        case.get("repeat", 1))
    return {"report": report, "seconds": seconds}


def run_ft(df, facet, facet_values, label, predicted, repeat):
    """smclarify's FT metric alone, for every facet entry, given what its post-training bias_report gives it: the
    steps of smclarify.bias.report._report and _do_report for a categorical facet (facet, label and predicted
    columns dropped from the features; the facet mask and the positive-prediction mask from smclarify's own
    functions), then ``FT`` called as _categorical_metric_call_wrapper calls it. Only the FT calls are timed."""
    facet_type, facet_series = common.ensure_series_data_type(df[facet], facet_values)
    if facet_type != common.DataType.CATEGORICAL:
        raise ValueError("the ft case takes a categorical facet")
    features = df.drop(columns=[c for c in (facet, label.name, predicted.name) if c in df.columns])
    label_type, label_series = common.ensure_series_data_type(label.series, label.positive_label_values)
    pred_type, pred_series = common.ensure_series_data_type(predicted.series, label.positive_label_values)
    positive_predicted = smc_report._positive_predicted_index(pred_series, pred_type, label_series, label_type,
                                                             label.positive_label_values)
    entries = [[v] for v in facet_series.unique()] if not facet_values else [facet_values]
    masks = {",".join(map(str, values)): smc_report._categorical_data_idx(facet_series, values) for values in entries}
    ft, seconds = _runs(lambda: {key: posttraining.FT(features, mask, positive_predicted) for key, mask in masks.items()},
                        repeat)
    return {"ft": ft, "seconds": seconds}


def main(spec_path, out_path):
    spec = json.load(open(spec_path))
    data = pd.read_parquet(spec["data"]) if spec.get("data") else None
    out = {}
    for case in spec["cases"]:
        try:
            out[case["id"]] = run_case(data, case)
        except Exception as exc:  # reported to the caller, which decides
            out[case["id"]] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    json.dump(out, open(out_path, "w"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
