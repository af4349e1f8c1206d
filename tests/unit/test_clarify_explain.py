"""SHAP explanations of ONNX models: exactness on a linear model, agreement of the exact and KernelSHAP
paths, seeding, aggregation and Clarify's analysis.json shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from clarify import ClarifyInputError
from clarify.explanations import ModelFunction, explain, global_shap_values


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = x @ np.array([2.0, -1.0, 0.5, 0.0]) + 0.3
    return pd.DataFrame(x, columns=["a", "b", "c", "d"]), y


@pytest.fixture(scope="module")
def linear_onnx(data):
    x, y = data
    model = LinearRegression().fit(x.to_numpy(), y)
    return model, to_onnx(model, x.to_numpy()[:1]).SerializeToString()


def test_linear_model_exact_values(data, linear_onnx):
    """For a linear model, phi_i = w_i (x_i - E_b[x_i]) and the expected value is f(E_b[x])."""
    x, _ = data
    model, onx = linear_onnx
    baseline = x.iloc[:20]
    r = explain(onx, x.iloc[:50], baseline, method="exact", save_local=True)
    entry = r["explanations"]["kernel_shap"]["label0"]
    local = pd.DataFrame(entry["local_shap_values"])
    want = (x.iloc[:50].to_numpy() - baseline.to_numpy().mean(axis=0)) * model.coef_
    np.testing.assert_allclose(local[list(x.columns)].to_numpy(), want, atol=1e-5)
    assert entry["expected_value"] == pytest.approx(model.predict(baseline.to_numpy()).mean(), abs=1e-5)
    assert list(entry["global_shap_values"]) == ["a", "b", "c", "d"]
    assert entry["global_shap_values"]["d"] == pytest.approx(0.0, abs=1e-6)
    assert r["explanation_config"]["method"] == "exact"


def test_exact_equals_kernel_shap_enumeration(data):
    """KernelSHAP enumerates every coalition when num_samples covers them: it then gives the exact values."""
    x, _ = data
    y = (x["a"] + x["b"] * x["c"] > 0).astype(int)
    onx = to_onnx(DecisionTreeClassifier(max_depth=4, random_state=0).fit(x.to_numpy(), y), x.to_numpy()[:1],
                  options={"zipmap": False}).SerializeToString()
    exact = explain(onx, x.iloc[:40], num_clusters=8, method="exact", save_local=True)
    kernel = explain(onx, x.iloc[:40], num_clusters=8, method="kernel", num_samples=64, save_local=True)
    e, k = exact["explanations"]["kernel_shap"]["label0"], kernel["explanations"]["kernel_shap"]["label0"]
    np.testing.assert_allclose(pd.DataFrame(e["local_shap_values"]), pd.DataFrame(k["local_shap_values"]), atol=1e-6)
    assert e["expected_value"] == pytest.approx(k["expected_value"], abs=1e-9)
    # efficiency: the attributions of a row add up to f(x) - E[f]
    model = ModelFunction(onx)
    fx = model(x.iloc[:40].to_numpy())[:, 1]
    np.testing.assert_allclose(pd.DataFrame(e["local_shap_values"]).sum(axis=1), fx - e["expected_value"], atol=1e-5)


def test_kernel_shap_is_seeded():
    rng = np.random.default_rng(1)
    x = pd.DataFrame(rng.normal(size=(200, 14)).astype(np.float32), columns=[f"f{i}" for i in range(14)])
    y = (x["f0"] - x["f3"] + 0.5 * x["f7"] > 0).astype(int)
    onx = to_onnx(LogisticRegression().fit(x.to_numpy(), y), x.to_numpy()[:1]).SerializeToString()  # zipmap on
    run = lambda seed: explain(onx, x.iloc[:5], num_clusters=5, method="auto", num_samples=60, seed=seed)  # noqa: E731
    a, b, c = run(3), run(3), run(4)
    assert a["explanation_config"]["method"] == "kernel"
    assert a == b
    assert a["explanations"] != c["explanations"]
    top = max(a["explanations"]["kernel_shap"]["label0"]["global_shap_values"].items(), key=lambda kv: kv[1])
    assert top[0] in ("f0", "f3")


def test_aggregations():
    phi = np.array([[1.0, -2.0], [-3.0, 2.0], [2.0, 0.0]])
    np.testing.assert_allclose(global_shap_values(phi, "mean_abs"), [2.0, 4 / 3])
    np.testing.assert_allclose(global_shap_values(phi, "median"), [1.0, 0.0])
    np.testing.assert_allclose(global_shap_values(phi, "mean_sq"), [14 / 3, 8 / 3])
    with pytest.raises(ClarifyInputError):
        global_shap_values(phi, "max")


def test_bad_input(data, linear_onnx):
    x, _ = data
    _, onx = linear_onnx
    with pytest.raises(ClarifyInputError, match="'s' are not numeric"):
        explain(onx, x.assign(s="t"))
    with pytest.raises(ClarifyInputError, match="takes 4 features"):
        explain(onx, x.iloc[:, :3])
    with pytest.raises(ClarifyInputError, match="does not exist"):
        explain("/nonexistent/model.onnx", x)


def test_baseline_is_recorded_and_reusable(data, linear_onnx):
    """The k-means baseline (rows and weights) is in explanation_config; feeding it back reproduces the run."""
    x, _ = data
    _, onx = linear_onnx
    first = explain(onx, x.iloc[:30], num_clusters=5)
    cfg = first["explanation_config"]
    assert len(cfg["baseline"]) == 5 and sum(cfg["baseline_weights"]) == pytest.approx(1.0)
    again = explain(onx, x.iloc[:30], pd.DataFrame(cfg["baseline"], columns=cfg["features"]),
                    baseline_weights=cfg["baseline_weights"])
    a, b = first["explanations"]["kernel_shap"]["label0"], again["explanations"]["kernel_shap"]["label0"]
    assert b["expected_value"] == pytest.approx(a["expected_value"], abs=1e-12)
    assert b["global_shap_values"] == pytest.approx(a["global_shap_values"], abs=1e-12)


def test_zipmap_columns_follow_the_class_order_in_serving_and_explanations():
    """One ONNX wrapper (core.onnx) for serving and explanations: a ZipMap output comes back with the same
    columns as the probability tensor of the same model (sklearn's classes_ order), whatever the labels."""
    from core.onnx import OnnxModel

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = np.array(["yes", "no", "maybe"])[np.argmax(x, axis=1)]  # string classes, sorted: maybe, no, yes
    clf = LogisticRegression(max_iter=500).fit(x, y)
    zipmap = to_onnx(clf, x[:1]).SerializeToString()
    tensor = to_onnx(clf, x[:1], options={"zipmap": False}).SerializeToString()
    want = clf.predict_proba(x[:20])
    served_zip = OnnxModel(zipmap).run({"X": x[:20]}, ["output_probability"])["output_probability"]
    served_tensor = OnnxModel(tensor).run({"X": x[:20]}, ["probabilities"])["probabilities"]
    np.testing.assert_allclose(served_zip, want, atol=1e-5)
    np.testing.assert_array_equal(served_zip, served_tensor)
    np.testing.assert_array_equal(ModelFunction(zipmap)(x[:20]), ModelFunction(tensor)(x[:20]))
    a = explain(zipmap, x[:10], x[:5], method="exact")["explanations"]["kernel_shap"]
    b = explain(tensor, x[:10], x[:5], method="exact")["explanations"]["kernel_shap"]
    assert list(a) == ["label0", "label1", "label2"] and a == b
