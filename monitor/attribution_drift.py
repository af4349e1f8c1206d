"""Feature-attribution drift: NDCG of the live SHAP ranking against the baseline, per label.

Relevance is the baseline attribution; live values only decide the order; all features count (no
cutoff); ties in live values are averaged (sklearn's ndcg_score). Violation when NDCG < threshold.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import ndcg_score

DEFAULT_THRESHOLD = 0.90


def ndcg(baseline: dict[str, float], live: dict[str, float]) -> float:
    """NDCG of the live ranking with baseline attributions as relevance, over the baseline's features."""
    missing = [f for f in baseline if f not in live]
    if missing:
        raise ValueError(f"live attributions lack features {missing}")
    names = list(baseline)
    if len(names) < 2:
        return 1.0
    rel = np.asarray([[float(baseline[f]) for f in names]])
    score = np.asarray([[float(live[f]) for f in names]])
    return float(ndcg_score(rel, score))


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
