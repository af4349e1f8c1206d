"""Bias drift: each live Clarify metric against the baseline's (a violation when farther from the ideal).

The metrics come from clarify.bias_report on the window; each metric's ideal value is the one clarify
registers (1 for DI, 0 for the others). Errors and nulls are not compared.
"""

from __future__ import annotations

import math

import pandas as pd

import clarify
from core.jsonio import parse_value
STAGES = ("pre_training_bias_metrics", "post_training_bias_metrics")
CLOUDWATCH_INF = 2.348543e108  # how the service publishes +-inf


def _metrics(analysis: dict) -> dict[tuple[str, str, str, str], float]:
    """{(stage, facet, facet_value, metric): value} of an analysis.json."""
    out = {}
    for stage in STAGES:
        for facet, entries in ((analysis.get(stage) or {}).get("facets") or {}).items():
            for e in entries:
                for m in e.get("metrics", []):
                    v = m.get("value")
                    if v is None or m.get("error"):
                        continue
                    out[(stage, facet, str(e.get("value_or_threshold")), m["name"])] = parse_value(v)
    return out


def drifted(metric: str, baseline: float, live: float) -> bool:
    """True when live is farther from the metric's ideal value than baseline."""
    try:
        ideal = clarify.get_metric(metric).ideal
    except ValueError:
        ideal = 0.0
    if math.isnan(live) or math.isnan(baseline):
        return False
    return abs(live - ideal) > abs(baseline - ideal)


def check(baseline_analysis: dict, live_analysis: dict) -> tuple[dict, list]:
    """(live metric values, violations) comparing every metric present in both analyses."""
    base, live = _metrics(baseline_analysis), _metrics(live_analysis)
    violations = []
    for key, lv in live.items():
        if key not in base:
            continue
        _stage, facet, facet_value, name = key
        if drifted(name, base[key], lv):
            violations.append({"facet": facet, "facet_value": facet_value, "metric_name": name,
                               "constraint_check_type": "bias_drift_check",
                               "description": f"Value {lv!r} does not meet the constraint requirement"})
    return live, violations


def metric_value_for_export(v: float) -> float:
    """+-inf as the service publishes it (+-2.348543e108)."""
    if math.isinf(v):
        return math.copysign(CLOUDWATCH_INF, v)
    return v


def run(window: pd.DataFrame, baseline_analysis: dict, **bias_config) -> tuple[dict, list]:
    """(live analysis, violations): clarify.bias_report on the window (bias_config passed through:
    label, positive_label_values, facets, predicted_label or probability, probability_threshold, group)."""
    if window.empty:
        raise ValueError("no rows in the window to compute bias metrics on")
    live = clarify.bias_report(window, **bias_config)
    return live, check(baseline_analysis, live)[1]
