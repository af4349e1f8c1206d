"""Model-quality metrics, constraints and checks in Model Monitor's format.

Metric names are the service's (regression_metrics, binary_classification_metrics,
multiclass_classification_metrics). Each is {"value", "standard_deviation"}: the deviation comes from
5 random 80% subsamples when at least 200 rows are available, else "NaN" (as the service does).
"Best constant classifier" predicts the positive class (binary) or the most frequent class
(multiclass).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
from sklearn import metrics as skm

if TYPE_CHECKING:  # annotations only: monitor.spec runs this module's jobs
    from monitor.spec import ProblemType

STATS_KEY = {"Regression": "regression_metrics", "BinaryClassification": "binary_classification_metrics",
             "MulticlassClassification": "multiclass_classification_metrics"}
CONSTRAINTS_KEY = {"Regression": "regression_constraints",
                   "BinaryClassification": "binary_classification_constraints",
                   "MulticlassClassification": "multiclass_classification_constraints"}
ERROR_METRICS = {"mae", "mse", "rmse", "false_positive_rate", "false_negative_rate"}
CONSTRAINED = {
    "Regression": ["mae", "mse", "rmse", "r2"],
    "BinaryClassification": ["recall", "precision", "accuracy", "true_positive_rate", "true_negative_rate",
                             "false_positive_rate", "false_negative_rate", "auc", "f0_5", "f1", "f2"],
    "MulticlassClassification": ["accuracy", "weighted_recall", "weighted_precision", "weighted_f0_5",
                                 "weighted_f1", "weighted_f2"],
}
MIN_ROWS_FOR_STD = 200
N_SUBSAMPLES = 5
MAX_CURVE_POINTS = 101


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def _fbeta(p: float, r: float, beta: float) -> float:
    b2 = beta * beta
    return _div((1 + b2) * p * r, b2 * p + r)


def _regression(y: np.ndarray, yhat: np.ndarray, _prob: np.ndarray | None) -> dict[str, float]:
    err = yhat - y
    mse = float(np.mean(err ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"mae": float(np.mean(np.abs(err))), "mse": mse, "rmse": math.sqrt(mse),
            "r2": 1 - float(np.sum(err ** 2)) / ss_tot if ss_tot else 0.0}


def _binary_scalars(y: np.ndarray, yhat: np.ndarray, prob: np.ndarray | None) -> dict[str, float]:
    tp = float(np.sum(y & yhat)); fp = float(np.sum(~y & yhat))
    fn = float(np.sum(y & ~yhat)); tn = float(np.sum(~y & ~yhat))
    n = tp + fp + fn + tn
    recall, precision = _div(tp, tp + fn), _div(tp, tp + fp)
    prevalence = _div(tp + fn, n)
    out = {"recall": recall, "precision": precision, "accuracy": _div(tp + tn, n),
           "recall_best_constant_classifier": 1.0 if tp + fn else 0.0,
           "precision_best_constant_classifier": prevalence,
           "accuracy_best_constant_classifier": prevalence,
           "true_positive_rate": recall, "true_negative_rate": _div(tn, tn + fp),
           "false_positive_rate": _div(fp, fp + tn), "false_negative_rate": _div(fn, fn + tp)}
    score = prob if prob is not None else yhat.astype(float)
    out["auc"] = float(skm.roc_auc_score(y, score)) if 0 < y.sum() < len(y) else float("nan")
    bc_r = out["recall_best_constant_classifier"]
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        out[name] = _fbeta(precision, recall, beta)
        out[f"{name}_best_constant_classifier"] = _fbeta(prevalence, bc_r, beta)
    return out


def _multiclass_scalars(y: np.ndarray, yhat: np.ndarray, _prob: np.ndarray | None) -> dict[str, float]:
    labels = np.unique(np.concatenate([y, yhat]))
    out = {"accuracy": float(np.mean(y == yhat))}
    values, counts = np.unique(y, return_counts=True)
    const = np.full(len(y), values[np.argmax(counts)])
    out["accuracy_best_constant_classifier"] = float(np.mean(y == const))
    for suffix, pred in (("", yhat), ("_best_constant_classifier", const)):
        p, r, _, _ = skm.precision_recall_fscore_support(y, pred, labels=labels, average="weighted", zero_division=0)
        out[f"weighted_recall{suffix}"] = float(r)
        out[f"weighted_precision{suffix}"] = float(p)
        for beta, name in ((0.5, "weighted_f0_5"), (1.0, "weighted_f1"), (2.0, "weighted_f2")):
            out[f"{name}{suffix}"] = float(skm.fbeta_score(y, pred, beta=beta, labels=labels, average="weighted",
                                                           zero_division=0))
    return out


_SCALARS: dict[str, Callable] = {"Regression": _regression, "BinaryClassification": _binary_scalars,
                                 "MulticlassClassification": _multiclass_scalars}


def _confusion(y: np.ndarray, yhat: np.ndarray) -> dict:
    ct = pd.crosstab(pd.Series(y, name="actual").astype(str), pd.Series(yhat, name="predicted").astype(str))
    labels = sorted(set(ct.index) | set(ct.columns))
    ct = ct.reindex(index=labels, columns=labels, fill_value=0)
    return {a: {p: int(ct.at[a, p]) for p in labels} for a in labels}


def _thin(*arrays: np.ndarray) -> list[list[float]]:
    n = len(arrays[0])
    idx = np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).astype(int)) if n else np.array([], int)
    return [a[idx].astype(float).tolist() for a in arrays]


def _to_binary(values: pd.Series, positive_label) -> np.ndarray:
    """True where a label equals the positive label (numerically when both sides are numbers)."""
    num = pd.to_numeric(values, errors="coerce")
    try:
        pos = float(positive_label)
    except (TypeError, ValueError):
        pos = None
    if pos is not None and num.notna().all():
        return (num == pos).to_numpy(dtype=bool)
    return (values.astype(str).str.strip() == str(positive_label)).to_numpy(dtype=bool)


def compute(problem_type: ProblemType, y_true, y_pred, y_prob=None, positive_label=1,
            seed: int = 0) -> dict:
    """{metric: {"value", "standard_deviation"}} (plus confusion matrix and curves for classifiers)."""
    if problem_type not in _SCALARS:
        raise ValueError(f"problem_type: {problem_type!r} is not one of {sorted(_SCALARS)}")
    y_true, y_pred = pd.Series(y_true).reset_index(drop=True), pd.Series(y_pred).reset_index(drop=True)
    if len(y_true) != len(y_pred):
        raise ValueError(f"ground truth has {len(y_true)} rows, predictions {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("no rows with both a prediction and a ground-truth label")
    prob = None if y_prob is None else pd.to_numeric(pd.Series(y_prob)).to_numpy(dtype=np.float64)
    if problem_type == "Regression":
        y = pd.to_numeric(y_true, errors="raise").to_numpy(np.float64)
        yhat = pd.to_numeric(y_pred, errors="raise").to_numpy(np.float64)
    elif problem_type == "BinaryClassification":
        y, yhat = _to_binary(y_true, positive_label), _to_binary(y_pred, positive_label)
    else:
        y, yhat = y_true.astype(str).to_numpy(), y_pred.astype(str).to_numpy()
    fn = _SCALARS[problem_type]
    values = fn(y, yhat, prob)
    stds = {k: float("nan") for k in values}
    n = len(y)
    if n >= MIN_ROWS_FOR_STD:
        rng = np.random.default_rng(seed)
        runs = []
        for _ in range(N_SUBSAMPLES):
            idx = rng.choice(n, size=int(0.8 * n), replace=False)
            runs.append(fn(y[idx], yhat[idx], None if prob is None else prob[idx]))
        stds = {k: float(np.std([r[k] for r in runs])) for k in values}
    out: dict = {k: {"value": v, "standard_deviation": stds[k]} for k, v in values.items()}
    if problem_type != "Regression":
        out["confusion_matrix"] = _confusion(y.astype(int) if y.dtype == bool else y,
                                             yhat.astype(int) if yhat.dtype == bool else yhat)
    if problem_type == "BinaryClassification" and 0 < y.sum() < n:
        score = prob if prob is not None else yhat.astype(float)
        fpr, tpr, _ = skm.roc_curve(y, score)
        precisions, recalls, _ = skm.precision_recall_curve(y, score)
        fpr, tpr = _thin(fpr, tpr)
        precisions, recalls = _thin(precisions, recalls)
        out["receiver_operating_characteristic_curve"] = {"false_positive_rates": fpr, "true_positive_rates": tpr}
        out["precision_recall_curve"] = {"precisions": precisions, "recalls": recalls}
    return out


def statistics_json(problem_type: ProblemType, metrics: dict, item_count: int) -> dict:
    return {"version": 0.0, "dataset": {"item_count": int(item_count)}, STATS_KEY[problem_type]: metrics}


def suggest_constraints(problem_type: ProblemType, metrics: dict) -> dict:
    """Thresholds at the baseline values; error metrics use GreaterThanThreshold, the rest LessThanThreshold."""
    body = {}
    for name in CONSTRAINED[problem_type]:
        v = metrics.get(name, {}).get("value")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        body[name] = {"threshold": float(v),
                      "comparison_operator": "GreaterThanThreshold" if name in ERROR_METRICS else "LessThanThreshold"}
    return {"version": 0.0, CONSTRAINTS_KEY[problem_type]: body}


def check(statistics: dict, constraints: dict) -> list[dict]:
    """Violations of the constraints by a window's model-quality statistics."""
    key = next((k for k in CONSTRAINTS_KEY.values() if k in constraints), None)
    if key is None:
        raise ValueError(f"constraints: none of {sorted(CONSTRAINTS_KEY.values())} found")
    problem = next(p for p, k in CONSTRAINTS_KEY.items() if k == key)
    metrics = statistics.get(STATS_KEY[problem])
    if metrics is None:
        raise ValueError(f"statistics: no {STATS_KEY[problem]} to check against {key}")
    out = []
    for name, c in constraints[key].items():
        op = c.get("comparison_operator")
        if op not in ("LessThanThreshold", "GreaterThanThreshold"):
            raise ValueError(f"constraints.{key}.{name}.comparison_operator: {op!r} is not "
                             "LessThanThreshold or GreaterThanThreshold")
        m = metrics.get(name)
        if m is None:
            continue
        v, sd, t = float(m["value"]), m.get("standard_deviation"), float(c["threshold"])
        if (op == "LessThanThreshold" and v < t) or (op == "GreaterThanThreshold" and v > t):
            out.append({"metric_name": name, "constraint_check_type": op,
                        "description": f"Metric {name} with {v!r} +/- {sd!r} was {op} '{t!r}'"})
    return out
