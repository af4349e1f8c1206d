"""The four monitoring jobs and their baselines, each on a DataFrame, writing Model Monitor's files.

A job reads its baseline folder, checks a window and writes its reports to out_dir:
- data quality: statistics.json, constraint_violations.json, drift_report.json
- model quality: statistics.json, constraint_violations.json
- bias and attribution: analysis.json, constraint_violations.json
It returns the violations and the numbers monitor.metrics publishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from core.jsonio import read_json, write_json
from monitor import attribution_drift, bias_drift, data_quality as dq, model_quality as mq
from monitor.baseline import load_baseline, suggest_baseline
from monitor.ground_truth import GROUND_TRUTH_COLUMN


@dataclass
class JobResult:
    violations: list[dict]
    gauges: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _column(df: pd.DataFrame, name: str, what: str) -> pd.Series:
    if name not in df.columns:
        raise ValueError(f"{what}: column {name!r} is not in the data (columns: {list(df.columns)})")
    return df[name]


# ---- data quality ---------------------------------------------------------------------------------------

def data_quality(window: pd.DataFrame, baseline_dir: str | Path, out_dir: str | Path,
                 min_window_rows: int = dq.MIN_WINDOW_ROWS) -> JobResult:
    statistics, constraints = load_baseline(baseline_dir)
    r = dq.check(window, statistics, constraints, min_window_rows=min_window_rows)
    r.write(out_dir)
    gauges = {"drift": r.drift, "completeness": r.completeness} if r.emit_metrics else {}
    return JobResult(r.violations, gauges, r.notes)


def baseline_data_quality(df: pd.DataFrame, out_dir: str | Path) -> tuple[dict, dict]:
    return suggest_baseline(df, out_dir)


# ---- model quality --------------------------------------------------------------------------------------

def _model_quality_metrics(df: pd.DataFrame, problem_type: str, ground_truth_attribute: str,
                           inference_attribute: str, probability_attribute: str | None,
                           probability_threshold: float | None, positive_label) -> dict:
    y = _column(df, ground_truth_attribute, "ground_truth_attribute")
    prob = _column(df, probability_attribute, "probability_attribute") if probability_attribute else None
    if probability_threshold is not None and prob is not None:
        pred = (pd.to_numeric(prob) > probability_threshold).astype(int)
    else:
        pred = _column(df, inference_attribute, "inference_attribute")
    keep = y.notna() & pred.notna()
    return mq.compute(problem_type, y[keep], pred[keep], None if prob is None else prob[keep], positive_label)


def model_quality(window: pd.DataFrame, baseline_dir: str | Path, out_dir: str | Path,
                  problem_type: str = "BinaryClassification", ground_truth_attribute: str = GROUND_TRUTH_COLUMN,
                  inference_attribute: str = "prediction", probability_attribute: str | None = None,
                  probability_threshold: float | None = None, positive_label=1) -> JobResult:
    constraints = read_json(Path(baseline_dir) / "constraints.json")
    metrics = _model_quality_metrics(window, problem_type, ground_truth_attribute, inference_attribute,
                                     probability_attribute, probability_threshold, positive_label)
    stats = mq.statistics_json(problem_type, metrics, len(window))
    violations = mq.check(stats, constraints)
    write_json(Path(out_dir) / "statistics.json", stats)
    write_json(Path(out_dir) / "constraint_violations.json", {"violations": violations})
    return JobResult(violations, {"model_quality": metrics})


def baseline_model_quality(df: pd.DataFrame, out_dir: str | Path, problem_type: str = "BinaryClassification",
                           ground_truth_attribute: str = "label", inference_attribute: str = "prediction",
                           probability_attribute: str | None = None, probability_threshold: float | None = None,
                           positive_label=1) -> tuple[dict, dict]:
    metrics = _model_quality_metrics(df, problem_type, ground_truth_attribute, inference_attribute,
                                     probability_attribute, probability_threshold, positive_label)
    stats = mq.statistics_json(problem_type, metrics, len(df))
    constraints = mq.suggest_constraints(problem_type, metrics)
    write_json(Path(out_dir) / "statistics.json", stats)
    write_json(Path(out_dir) / "constraints.json", constraints)
    return stats, constraints


# ---- bias drift -----------------------------------------------------------------------------------------

def bias(window: pd.DataFrame, baseline_dir: str | Path, out_dir: str | Path, **bias_config) -> JobResult:
    baseline = read_json(Path(baseline_dir) / "analysis.json")
    live, violations = bias_drift.run(window, baseline, **bias_config)
    write_json(Path(out_dir) / "analysis.json", live)
    write_json(Path(out_dir) / "constraint_violations.json", {"version": "1.0", "violations": violations})
    values = {(f, v, m): x for (_st, f, v, m), x in bias_drift.check(live, live)[0].items()}
    return JobResult(violations, {"bias": values})


def baseline_bias(df: pd.DataFrame, out_dir: str | Path, **bias_config) -> dict:
    import clarify
    analysis = clarify.bias_report(df, **bias_config)
    write_json(Path(out_dir) / "analysis.json", analysis)
    return analysis


# ---- feature attribution drift --------------------------------------------------------------------------

def attribution(window: pd.DataFrame, baseline_dir: str | Path, out_dir: str | Path, model, features: list[str],
                threshold: float = attribution_drift.DEFAULT_THRESHOLD, max_rows: int = 500) -> JobResult:
    baseline = read_json(Path(baseline_dir) / "analysis.json")
    live, scores, violations = attribution_drift.run(window, baseline, model, features, threshold, max_rows)
    write_json(Path(out_dir) / "analysis.json", live)
    write_json(Path(out_dir) / "constraint_violations.json", {"version": "1.0", "violations": violations})
    shap = {label: v["global_shap_values"] for label, v in live["explanations"]["kernel_shap"].items()}
    return JobResult(violations, {"ndcg": scores, "attribution": shap})


def baseline_attribution(df: pd.DataFrame, out_dir: str | Path, model, features: list[str], max_rows: int = 500,
                         seed: int = 0) -> dict:
    import clarify
    rows = df[features].dropna()
    if len(rows) > max_rows:
        rows = rows.sample(max_rows, random_state=seed)
    analysis = clarify.explain(model, rows.astype("float32"), features=features, seed=seed)
    write_json(Path(out_dir) / "analysis.json", analysis)
    return analysis
