"""Model-quality metrics, constraints and checks; ground-truth join."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from monitor import ground_truth, model_quality as mq


def test_regression_metrics_match_sklearn_and_have_std():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    yhat = y + rng.normal(0, 0.3, size=500)
    m = mq.compute("Regression", y, yhat)
    assert m["mae"]["value"] == pytest.approx(skm.mean_absolute_error(y, yhat))
    assert m["mse"]["value"] == pytest.approx(skm.mean_squared_error(y, yhat))
    assert m["rmse"]["value"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, yhat)))
    assert m["r2"]["value"] == pytest.approx(skm.r2_score(y, yhat))
    assert 0 < m["mae"]["standard_deviation"] < 0.05


def test_binary_auc_curves_and_string_labels():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    prob = np.clip(y * 0.6 + rng.normal(0.2, 0.25, 400), 0, 1)
    yhat = (prob > 0.5).astype(int)
    m = mq.compute("BinaryClassification", pd.Series(y).astype(str), pd.Series(yhat).astype(str), prob,
                   positive_label="1")
    assert m["auc"]["value"] == pytest.approx(skm.roc_auc_score(y, prob))
    assert m["f1"]["value"] == pytest.approx(skm.f1_score(y, yhat))
    assert m["precision"]["value"] == pytest.approx(skm.precision_score(y, yhat))
    curve = m["receiver_operating_characteristic_curve"]
    assert len(curve["false_positive_rates"]) == len(curve["true_positive_rates"]) <= 101
    assert m["confusion_matrix"]["1"]["1"] == int(((y == 1) & (yhat == 1)).sum())
    assert not math.isnan(m["accuracy"]["standard_deviation"])


def test_multiclass_weighted_metrics():
    y = np.array(list("aabbbcccc") * 30)
    yhat = np.array(list("abbbbcacc") * 30)
    m = mq.compute("MulticlassClassification", y, yhat)
    assert m["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, yhat))
    assert m["weighted_f1"]["value"] == pytest.approx(skm.f1_score(y, yhat, average="weighted"))
    assert m["weighted_f2"]["value"] == pytest.approx(skm.fbeta_score(y, yhat, beta=2, average="weighted"))
    assert m["accuracy_best_constant_classifier"]["value"] == pytest.approx(4 / 9)
    assert m["confusion_matrix"]["a"] == {"a": 30, "b": 30, "c": 0}


def test_constraints_and_violations():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 1000)
    good = np.where(rng.random(1000) < 0.9, y, 1 - y)
    bad = np.where(rng.random(1000) < 0.6, y, 1 - y)
    base = mq.compute("BinaryClassification", y, good)
    cons = mq.suggest_constraints("BinaryClassification", base)
    body = cons["binary_classification_constraints"]
    assert body["accuracy"] == {"threshold": base["accuracy"]["value"], "comparison_operator": "LessThanThreshold"}
    assert body["false_positive_rate"]["comparison_operator"] == "GreaterThanThreshold"
    stats = mq.statistics_json("BinaryClassification", mq.compute("BinaryClassification", y, bad), 1000)
    v = {x["metric_name"]: x for x in mq.check(stats, cons)}
    assert {"accuracy", "f1", "auc", "false_positive_rate"} <= set(v)
    assert v["auc"]["constraint_check_type"] == "LessThanThreshold"
    assert v["auc"]["description"].startswith("Metric auc with ")
    assert mq.check(mq.statistics_json("BinaryClassification", base, 1000), cons) == []


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="problem_type"):
        mq.compute("Ranking", [1], [1])
    with pytest.raises(ValueError, match="no rows"):
        mq.compute("Regression", [], [])
    with pytest.raises(ValueError, match="comparison_operator"):
        mq.check({"regression_metrics": {"mae": {"value": 1}}},
                 {"regression_constraints": {"mae": {"threshold": 1, "comparison_operator": "Bigger"}}})


def test_ground_truth_joins_on_inference_id_else_event_id():
    captured = pd.DataFrame({"x": [1, 2, 3, 4], "prediction": [1, 0, 1, 1],
                             "eventId": ["e1", "e2", "e3", "e4"], "inferenceId": ["i1", None, "i3", None]})
    gt = ground_truth.parse([ground_truth.record("i1", 1), ground_truth.record("e2", 0),
                             ground_truth.record("e3", 1),  # e3 has an inferenceId: no match on eventId
                             ground_truth.record("e4", 0), ground_truth.record("e4", 1)])  # re-posted label wins
    merged = ground_truth.merge(captured, gt)
    assert merged[["x", "groundTruth"]].values.tolist() == [[1, 1], [2, 0], [4, 1]]


def test_ground_truth_bad_record_names_field():
    with pytest.raises(ValueError, match="eventMetadata.eventId"):
        ground_truth.parse([{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {}}])
    with pytest.raises(ValueError, match="encoding must be CSV"):
        ground_truth.parse([{"groundTruthData": {"data": "1", "encoding": "JSON"}, "eventMetadata": {"eventId": "x"}}])
