"""Feature-attribution drift: NDCG of the live SHAP ranking against the baseline, per label.

Relevance is the baseline attribution; live values only decide the order; all features count (no
cutoff); ties in live values are averaged (sklearn's ndcg_score). Violation when NDCG < threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import clarify

DEFAULT_THRESHOLD = 0.90


def ndcg(baseline: dict[str, float], live: dict[str, float]) -> float:
    """NDCG of the live ranking with baseline attributions as relevance (clarify.ndcg)."""
    missing = [f for f in baseline if f not in live]
    if missing:
        raise ValueError(f"live attributions lack features {missing}")
    return clarify.ndcg(baseline, live)


def _global_shap(analysis: dict, where: str) -> dict[str, dict[str, float]]:
    try:
        ks = analysis["explanations"]["kernel_shap"]
    except (KeyError, TypeError):
        raise ValueError(f"{where}: no explanations.kernel_shap") from None
    return {label: v["global_shap_values"] for label, v in ks.items()}


def check(baseline_analysis: dict, live_analysis: dict, threshold: float = DEFAULT_THRESHOLD) -> tuple[dict, list]:
    """({label: ndcg}, violations) for every label of the baseline's explanations."""
    base = _global_shap(baseline_analysis, "baseline")
    live = _global_shap(live_analysis, "live analysis")
    scores, violations = {}, []
    for label, b in base.items():
        if label not in live:
            raise ValueError(f"live analysis has no explanations for label {label!r}")
        s = ndcg(b, live[label])
        scores[label] = s
        if s < threshold:
            violations.append({"label": label, "metric_name": "shap",
                               "constraint_check_type": "feature_attribution_drift_check",
                               "description": f"Feature attribution drift {s!r} exceeds threshold {threshold!r}"})
    return scores, violations


def run(window: pd.DataFrame, baseline_analysis: dict, model, features: list[str], threshold: float = DEFAULT_THRESHOLD,
        max_rows: int = 500, seed: int = 0, **explain_options) -> tuple[dict, dict, list]:
    """(live analysis, {label: ndcg}, violations): global SHAP (clarify.explain) on a sample of the window."""
    missing = [f for f in features if f not in window.columns]
    if missing:
        raise ValueError(f"window lacks model feature columns {missing}")
    rows = window[features].dropna()
    if rows.empty:
        raise ValueError("no complete rows in the window to explain")
    if len(rows) > max_rows:
        rows = rows.sample(max_rows, random_state=seed)
    base_cfg = baseline_analysis.get("explanation_config") or {}
    explain_options.setdefault("agg_method", base_cfg.get("agg_method", "mean_abs"))
    if base_cfg.get("baseline") is not None and "baseline" not in explain_options:
        # the baseline analysis's own background rows keep every window's attributions comparable
        explain_options["baseline"] = np.asarray(base_cfg["baseline"], dtype=np.float32)
        explain_options.setdefault("baseline_weights", base_cfg.get("baseline_weights"))
    live = clarify.explain(model, rows.astype("float32"), features=features, seed=seed, **explain_options)
    scores, violations = check(baseline_analysis, live, threshold)
    return live, scores, violations
