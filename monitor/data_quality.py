"""Data-quality check of a window against a baseline: constraint_violations.json and drift metrics."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.jsonio import write_json
from monitor import distance, types as ty
from monitor.constraints import MonitoringConfig
from monitor.statistics import baseline_counts, baseline_sketch, profile, statistics_json

log = logging.getLogger(__name__)
MIN_WINDOW_ROWS = 50


@dataclass
class DataQualityResult:
    """A window's statistics, its violations and per-feature drift metrics."""

    statistics: dict
    violations: list[dict]
    drift: dict[str, dict] = field(default_factory=dict)
    completeness: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    emit_metrics: bool = True

    def write(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        write_json(out / "statistics.json", self.statistics)
        write_json(out / "constraint_violations.json", {"violations": self.violations})
        write_json(out / "drift_report.json", {"features": self.drift, "completeness": self.completeness,
                                               "notes": self.notes})


def _pct(x: float) -> str:
    return f"{x * 100!r}%"


def _violation(name: str, check: str, description: str) -> dict:
    return {"feature_name": name, "constraint_check_type": check, "description": description}


_TOP_LEVEL_KEYS = ("evaluate_constraints", "emit_metrics", "datatype_check_threshold", "domain_content_threshold")


def _feature_config(global_mc: dict | None, overrides: dict | None) -> MonitoringConfig:
    """monitoring_config with a feature's monitoringConfigOverrides applied."""
    merged = dict(global_mc or {})
    dc = dict(merged.get("distribution_constraints") or {})
    for k, v in (overrides or {}).items():
        (merged if k in _TOP_LEVEL_KEYS else dc)[k] = v
    merged["distribution_constraints"] = dc
    return MonitoringConfig.from_json(merged)


def check(window: pd.DataFrame, statistics: dict, constraints: dict,
          min_window_rows: int = MIN_WINDOW_ROWS) -> DataQualityResult:
    """Run every data-quality check of Model Monitor on a window."""
    if "features" not in constraints:
        raise ValueError("constraints: no 'features' list (is this a data-quality constraints.json?)")
    if "features" not in statistics:
        raise ValueError("statistics: no 'features' list (is this a data-quality statistics.json?)")
    global_mc = constraints.get("monitoring_config")
    cfg = MonitoringConfig.from_json(global_mc)
    base = {f["name"]: f for f in constraints["features"]}
    base_stats = {f["name"]: f for f in statistics["features"]}
    window = window.rename(columns=str)
    profiles = profile(window)
    result = DataQualityResult(statistics_json(window, profiles), [], emit_metrics=cfg.emit_metrics)
    n_rows = len(window)

    missing = [n for n in base if n not in profiles]
    extra = [n for n in profiles if n not in base]
    sizes = f"Number of columns in current dataset: {len(profiles)}, Number of columns in baseline constraints: {len(base)}"
    for n in missing:
        result.violations.append(_violation(n, "missing_column_check",
                                            f"There are missing columns in current dataset. {sizes}"))
    for n in extra:
        result.violations.append(_violation(n, "extra_column_check",
                                            f"There are extra columns in current dataset. {sizes}"))
    if not cfg.evaluate_constraints:
        result.notes.append("evaluate_constraints is Disabled: only column checks ran")
        return result
    compare = n_rows >= min_window_rows
    if not compare:
        result.notes.append(f"window has {n_rows} rows, below min_window_rows={min_window_rows}: "
                            "baseline_drift_check skipped")
    for name, f in base.items():
        if name not in profiles:
            continue
        fc = _feature_config(global_mc, f.get("monitoringConfigOverrides"))
        p, col = profiles[name], window[name]
        expected = f.get("inferred_type", "Unknown")
        present = int((p.codes != ty.NULL).sum())
        completeness = present / n_rows if n_rows else 0.0
        result.completeness[name] = completeness
        if n_rows == 0:
            continue

        match = ty.type_match_fraction(p.codes, expected)
        if match < fc.datatype_check_threshold:
            result.violations.append(_violation(name, "data_type_check", (
                f"Data type match requirement is not met. Expected data type: {expected}, "
                f"Expected match: {_pct(fc.datatype_check_threshold)}. Observed: Only {_pct(match)} of data is {expected}.")))

        want = float(f.get("completeness", 0.0))
        slack = 0.0
        if fc.comparison_method == "Robust" and 0 < want < 1:
            slack = distance.C_ALPHA * math.sqrt(want * (1 - want) / n_rows)
        if completeness < want - slack:
            result.violations.append(_violation(name, "completeness_check", (
                f"Data completeness requirement is not met. Expected completeness: {_pct(want)}. "
                f"Observed: Only {_pct(completeness)} of data is complete.")))

        domains = (f.get("string_constraints") or {}).get("domains")
        live_counts = None
        if expected == "String" or domains:
            live_counts = ty.string_counts(col)
        if domains and live_counts is not None and live_counts.sum() > 0:
            inside = live_counts.index.isin([str(d) for d in domains])
            frac = float(live_counts[inside].sum() / live_counts.sum())
            if frac < fc.domain_content_threshold:
                outside = [str(v) for v in live_counts.index[~inside][:10]]
                result.violations.append(_violation(name, "categorical_values_check", (
                    f"Data value requirement is not met. Expected: {_pct(fc.domain_content_threshold)} of values "
                    f"in the baseline domain. Observed: Only {_pct(frac)} of data is in the domain; "
                    f"values outside it include {outside}.")))

        if not (compare and fc.perform_comparison and name in base_stats):
            continue
        bstat = base_stats[name]
        sketch = baseline_sketch(bstat)
        if sketch is not None and expected in ("Integral", "Fractional"):
            live = p.sorted_values if p.sorted_values is not None else np.sort(ty.numeric_values(col))
            ns = bstat["numerical_statistics"]
            d = distance.numeric(sketch, float(ns["common"]["num_present"]), float(ns["std_dev"]), live)
            test, threshold, method = fc.numerical_test, fc.comparison_threshold, fc.comparison_method
        elif expected == "String" and baseline_counts(bstat) is not None:
            ss = bstat["string_statistics"]
            if ss.get("distinct_count", 0) > len(ss["distribution"]["categorical"]["buckets"]):
                result.notes.append(f"{name}: more distinct values than baseline buckets, no drift distance")
                continue
            d = distance.categorical(baseline_counts(bstat), live_counts)
            test, threshold, method = fc.categorical_test, fc.categorical_comparison_threshold, fc.categorical_method_label
        else:
            continue
        dist = d[test]
        d["distance"], d["method"], d["threshold"] = dist, method, threshold
        result.drift[name] = d
        rule = distance.get(test)
        if rule.drifted(dist, threshold):
            result.violations.append(_violation(name, "baseline_drift_check",
                                                f"Baseline drift distance: {dist!r} {rule.comparison} threshold: {threshold!r}"))
    return result
