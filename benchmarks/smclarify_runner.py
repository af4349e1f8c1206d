"""Runs AWS's smclarify on cases described in a JSON spec; executed by the smclarify venv's python, never
imported by Ferry (smclarify breaks on pandas 3). Usage: python smclarify_runner.py spec.json out.json

spec: {"data": "file.parquet", "cases": [{"id", "facet", "facet_mode": "values"|"threshold"|"all",
"facet_values": [...], "label", "label_mode": "values"|"threshold", "positive": [...], "predicted": col|null,
"group": col|null, "stage": "pre_training"|"post_training", "methods": ["all"], "drop": [cols],
"smc_drop": [cols dropped for smclarify only], "data": optional per-case parquet}]}
Values are matched as values (columns cast to category) and thresholds as thresholds (cast to float), the
semantics Ferry uses. Output: {id: {"report": [...], "seconds": float} | {"error": str}}.
"""

import json
import logging
import sys
import time
import traceback

import pandas as pd
from smclarify.bias.report import FacetColumn, LabelColumn, StageType, bias_report

logging.disable(logging.CRITICAL)


def _typed(s, mode):
    return s.astype("category") if mode in ("values", "all") else pd.to_numeric(s)


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
    group = data[case["group"]] if case.get("group") else None
    t0 = time.perf_counter()
    report = bias_report(df, FacetColumn(case["facet"], facet_values), LabelColumn(case["label"], label, case["positive"]),
                         StageType(case["stage"]), predicted, metrics=case.get("methods", ["all"]), group_variable=group)
    return {"report": report, "seconds": time.perf_counter() - t0}


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
