"""SHAP explanations for ONNX models, in Clarify's analysis.json shape.

``explain`` computes interventional Shapley values of an ONNX model's output against a baseline (k-means
summary of the data, as Clarify's default, or given rows):

- ``method="kernel"``: KernelSHAP from the ``shap`` package (``num_samples`` coalitions per row, seeded);
- ``method="exact"``: every coalition enumerated and the model run on all of them in a few batched
  onnxruntime calls. These are the exact Shapley values KernelSHAP estimates (it returns the same numbers
  when ``num_samples`` covers all 2^M coalitions), for any model - trees, linear models or anything else -
  and far faster while the feature count M is small;
- ``method="auto"`` (default): exact when M <= ``max_exact_features``, else kernel.

Global attributions aggregate the local values over the explained rows (``agg_method``: mean_abs, median,
mean_sq). ``ndcg`` scores how far a live global attribution ranking drifted from a baseline one, as Model
Monitor's feature-attribution drift check does.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd

from clarify.bias.report import ClarifyInputError

log = logging.getLogger(__name__)

AGG_METHODS = ("mean_abs", "median", "mean_sq")


class ModelFunction:
    """An ONNX model (core.onnx underneath) as a function from a 2-D feature matrix to a 2-D float64 output.

    Takes a path, the model's bytes, an ``onnxruntime.InferenceSession`` or a ``core.onnx.OnnxModel``. The model
    must have one 2-D tensor input. The output is ``output`` when named, else the first 2-D float output (for
    skl2onnx classifiers the probabilities; a ZipMap comes back as columns in core.onnx's label order), else
    the first output.
    """

    def __init__(self, model, output: Optional[str] = None, batch_size: int = 65536):
        from core.onnx import OnnxModel

        if isinstance(model, (str, Path)) and "://" not in str(model) and not Path(model).exists():
            raise ClarifyInputError(f"model file {str(model)!r} does not exist")
        self.model = model if isinstance(model, OnnxModel) else OnnxModel(
            str(model) if isinstance(model, Path) else model, intra_op_threads=0, inter_op_threads=0)
        inputs = self.model.inputs
        if len(inputs) != 1:
            raise ClarifyInputError(f"the model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                                    "explanations need one 2-D feature input")
        self.input = inputs[0]
        shape = self.input.shape
        self.n_features = shape[1] if len(shape) == 2 and shape[1] > 0 else None
        outs = self.model.outputs
        if output is not None:
            if output not in self.model.output_names:
                raise ClarifyInputError(f"the model has no output {output!r} (outputs: {', '.join(self.model.output_names)})")
            self.output = output
        else:
            ranked = [o for o in outs if o.datatype in ("FP32", "FP64") and len(o.shape) == 2]
            self.output = (ranked or outs)[0].name
        self.is_probability = "prob" in self.output.lower()
        self.batch_size = batch_size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=self.input.dtype)
        if x.ndim == 1:
            x = x[None, :]
        parts = []
        for start in range(0, len(x), self.batch_size):
            y = self.model.run({self.input.name: x[start:start + self.batch_size]}, [self.output])[self.output]
            y = np.asarray(y, dtype=np.float64)
            parts.append(y.reshape(len(y), -1))
        return np.concatenate(parts) if parts else np.zeros((0, 1))


def _matrix(data, features: Optional[Sequence[str]], what: str) -> tuple[np.ndarray, list[str]]:
    if isinstance(data, pd.DataFrame):
        if features is not None:
            missing = [f for f in features if f not in data.columns]
            if missing:
                raise ClarifyInputError(f"{what}: feature column(s) {', '.join(repr(str(c)) for c in missing)} are not in the data")
            data = data[list(features)]
        bad = [c for c in data.columns if not (pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c]))]
        if bad:
            raise ClarifyInputError(f"{what}: column(s) {', '.join(repr(str(c)) for c in bad)} are not numeric; the model needs "
                                    "numbers (drop them or encode them first)")
        return data.to_numpy(dtype=np.float64), [str(c) for c in data.columns]
    x = np.asarray(data, dtype=np.float64)
    if x.ndim != 2:
        raise ClarifyInputError(f"{what} must be 2-D (rows x features), not shape {x.shape}")
    names = list(features) if features is not None else [f"feature_{i}" for i in range(x.shape[1])]
    return x, names


def _background(x: np.ndarray, baseline, weights, names, num_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Baseline rows and their weights (summing to 1): given rows (uniform weights unless given), or a
    k-means summary of the data (weights = cluster sizes)."""
    if baseline is not None:
        same_columns = isinstance(baseline, pd.DataFrame) and set(names) <= set(map(str, baseline.columns))
        b, _ = _matrix(baseline, names if same_columns else None, "baseline")
        if b.shape[1] != x.shape[1]:
            raise ClarifyInputError(f"baseline has {b.shape[1]} features, the data {x.shape[1]}")
        if len(b) == 0:
            raise ClarifyInputError("baseline has no rows")
        w = np.ones(len(b)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(b),) or (w < 0).any() or w.sum() <= 0:
            raise ClarifyInputError("baseline_weights must be one non-negative weight per baseline row")
        return b, w / w.sum()
    if len(x) <= num_clusters:
        return x, np.full(len(x), 1.0 / len(x))
    import shap

    summary = shap.kmeans(x, num_clusters)
    return np.asarray(summary.data, dtype=np.float64), np.asarray(summary.weights, dtype=np.float64) / np.sum(summary.weights)


@contextlib.contextmanager
def _seeded(seed: Optional[int]):
    """KernelSHAP samples coalitions from numpy's global generator: seed it, then put it back (and keep
    shap's per-row INFO logging quiet meanwhile)."""
    state = np.random.get_state()
    shap_log = logging.getLogger("shap")
    level = shap_log.level
    shap_log.setLevel(max(level, logging.WARNING))  # shap logs every row's coalition weights at INFO
    if seed is not None:
        np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
        shap_log.setLevel(level)


def _coalitions(m: int) -> np.ndarray:
    """All 2^m coalitions as a boolean (2^m, m) matrix; row k has feature i present iff bit i of k is set."""
    k = np.arange(2 ** m, dtype=np.int64)
    return ((k[:, None] >> np.arange(m)) & 1).astype(bool)


def exact_shap(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray, weights: np.ndarray,
               max_rows_per_call: int = 1_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Exact interventional Shapley values by enumerating every coalition.

    v(S) = sum_b w_b f(x_S, b_notS); phi_i = sum_{S not containing i} |S|!(M-|S|-1)!/M! (v(S+i) - v(S)).
    Rows are done in chunks of at most ``max_rows_per_call`` model rows. Returns (phi of shape (n, M, K),
    expected value of shape (K,)).
    """
    n, m = x.shape
    z = _coalitions(m)
    n_coal, n_bg = len(z), len(background)
    expected = weights @ f(background)
    k_out = expected.shape[0]
    size = z.sum(axis=1)
    fact = np.array([math.factorial(i) for i in range(m + 1)], dtype=np.float64)
    # for each feature: the coalitions without it, and their Shapley weights
    without = [np.flatnonzero(~z[:, i]) for i in range(m)]
    shapley_w = [fact[size[w]] * fact[m - size[w] - 1] / fact[m] for w in without]
    phi = np.empty((n, m, k_out))
    step = max(1, max_rows_per_call // (n_coal * n_bg))
    for start in range(0, n, step):
        xs = x[start:start + step]
        # (rows, coalitions, background, features): the row's value where the coalition has the feature
        grid = np.where(z[None, :, None, :], xs[:, None, None, :], background[None, None, :, :])
        out = f(grid.reshape(-1, m)).reshape(len(xs), n_coal, n_bg, k_out)
        values = np.einsum("icbk,b->ick", out, weights)
        for i in range(m):
            w = without[i]
            phi[start:start + len(xs), i, :] = np.einsum("s,isk->ik", shapley_w[i], values[:, w | (1 << i), :] - values[:, w, :])
    return phi, expected


def kernel_shap(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray, weights: np.ndarray,
                num_samples: Optional[int], seed: Optional[int], progress: Optional[Callable[[int, int], None]] = None,
                chunk: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """KernelSHAP from the shap package, ``chunk`` rows at a time; returns (phi (n, M, K), expected (K,))."""
    import shap
    from shap.utils._legacy import DenseData

    bg = DenseData(background, [str(i) for i in range(background.shape[1])], None, weights)
    parts = []
    with _seeded(seed):
        explainer = shap.KernelExplainer(f, bg, link="identity")
        for start in range(0, len(x), chunk):
            sv = explainer.shap_values(x[start:start + chunk], nsamples=num_samples if num_samples else "auto",
                                       silent=True)
            if isinstance(sv, list):  # older shap: one (n, M) array per output
                sv = np.stack([np.asarray(s) for s in sv], axis=-1)
            sv = np.asarray(sv, dtype=np.float64)
            parts.append(sv[:, :, None] if sv.ndim == 2 else sv)
            if progress:
                progress(min(start + chunk, len(x)), len(x))
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    return np.concatenate(parts), expected


def global_shap_values(phi: np.ndarray, agg_method: str = "mean_abs") -> np.ndarray:
    """Aggregate local SHAP values (rows x features) into one value per feature."""
    if agg_method == "mean_abs":
        return np.mean(np.abs(phi), axis=0)
    if agg_method == "median":
        return np.median(phi, axis=0)
    if agg_method == "mean_sq":
        return np.mean(phi ** 2, axis=0)
    raise ClarifyInputError(f"agg_method must be one of {', '.join(AGG_METHODS)}, not {agg_method!r}")


def explain(
    model,
    data,
    baseline=None,
    *,
    baseline_weights: Optional[Sequence[float]] = None,
    features: Optional[Sequence[str]] = None,
    num_clusters: int = 10,
    num_samples: Optional[int] = None,
    agg_method: str = "mean_abs",
    method: str = "auto",
    seed: Optional[int] = 0,
    output: Optional[str] = None,
    label_index: Optional[Sequence[int]] = None,
    label_headers: Optional[Sequence[str]] = None,
    save_local: bool = False,
    max_exact_features: int = 12,
    progress: Optional[Callable[[int, int], None]] = None,
) -> dict:
    """SHAP values of an ONNX model on ``data``, in Clarify's analysis.json shape.

    :param model: ONNX model path, bytes or onnxruntime.InferenceSession (one 2-D input)
    :param data: rows to explain (DataFrame of numeric feature columns in the model's order, or a 2-D array)
    :param baseline: baseline rows; default: a k-means summary of ``data`` with ``num_clusters`` centres
    :param baseline_weights: weights of the baseline rows (default uniform); with ``baseline`` set to a
        previous result's ``explanation_config["baseline"]`` and its ``["baseline_weights"]``, a later run
        uses exactly the same baseline (what attribution-drift checks want)
    :param features: feature columns to take from a DataFrame (default: all of them)
    :param num_samples: KernelSHAP coalitions per row (default: shap's "auto")
    :param agg_method: mean_abs | median | mean_sq, for the global values
    :param method: auto | exact | kernel
    :param seed: seeds KernelSHAP's sampling (results are then reproducible)
    :param output: model output to explain (default: the probabilities, or the first output)
    :param label_index: output columns to explain (default: column 1 of a 2-column probability output,
        i.e. the positive class, else every column)
    :param label_headers: names of the explained columns (default label0, label1, ...)
    :param save_local: also return each row's SHAP values
    :param progress: called with (rows done, rows) as KernelSHAP goes
    :return: ``{"version": "1.0", "explanations": {"kernel_shap": {label: {"global_shap_values": {feature:
        value}, "expected_value": float[, "local_shap_values": [{feature: value}, ...]]}}}, "explanation_config":
        {...}}``
    """
    if agg_method not in AGG_METHODS:
        raise ClarifyInputError(f"agg_method must be one of {', '.join(AGG_METHODS)}, not {agg_method!r}")
    if method not in ("auto", "exact", "kernel"):
        raise ClarifyInputError(f"method must be auto, exact or kernel, not {method!r}")
    m = model if isinstance(model, ModelFunction) else ModelFunction(model, output)
    x, names = _matrix(data, features, "data")
    if len(x) == 0:
        raise ClarifyInputError("data has no rows to explain")
    if m.n_features is not None and m.n_features != x.shape[1]:
        raise ClarifyInputError(f"the model takes {m.n_features} features, the data has {x.shape[1]} ({', '.join(names)})")
    background, weights = _background(x, baseline, baseline_weights, names, num_clusters)

    probe = m(background[:1])
    if label_index is None:
        label_index = [1] if (m.is_probability and probe.shape[1] == 2) else list(range(probe.shape[1]))
    label_index = list(label_index)
    if any(i < 0 or i >= probe.shape[1] for i in label_index):
        raise ClarifyInputError(f"label_index {label_index} is out of range: the output has {probe.shape[1]} columns")
    headers = list(label_headers) if label_headers else [f"label{i}" for i in range(len(label_index))]
    if len(headers) != len(label_index):
        raise ClarifyInputError("label_headers must name each explained output column")

    def f(rows: np.ndarray) -> np.ndarray:
        return m(rows)[:, label_index]

    use_exact = method == "exact" or (method == "auto" and x.shape[1] <= max_exact_features)
    if method == "exact" and x.shape[1] > 20:
        raise ClarifyInputError(f"exact SHAP enumerates 2^M coalitions: {x.shape[1]} features is too many, use kernel")
    phi, expected = (exact_shap(f, x, background, weights) if use_exact
                     else kernel_shap(f, x, background, weights, num_samples, seed, progress))
    result = {}
    for j, header in enumerate(headers):
        g = global_shap_values(phi[:, :, j], agg_method)
        entry = {"global_shap_values": {n: float(v) for n, v in zip(names, g)}, "expected_value": float(expected[j])}
        if save_local:
            entry["local_shap_values"] = [{n: float(v) for n, v in zip(names, row)} for row in phi[:, :, j]]
        result[header] = entry
    config = {"method": "exact" if use_exact else "kernel", "agg_method": agg_method, "num_rows": int(len(x)),
              "num_baseline_rows": int(len(background)), "num_samples": None if use_exact else num_samples,
              "seed": seed, "output": m.output, "label_index": label_index, "features": names,
              "baseline": background.tolist(), "baseline_weights": weights.tolist()}
    return {"version": "1.0", "explanations": {"kernel_shap": result}, "explanation_config": config}


def ndcg(baseline: dict, live: dict) -> float:
    """NDCG of the live attribution ranking against the baseline one (Model Monitor's attribution drift):
    relevance = baseline value, ranking by live value, all features, ties in live averaged
    (``sklearn.metrics.ndcg_score``). Features missing from ``live`` count as 0."""
    from sklearn.metrics import ndcg_score

    names = list(baseline)
    if len(names) < 2:
        return 1.0
    rel = np.array([[float(baseline[n]) for n in names]])
    score = np.array([[float(live.get(n, 0.0)) for n in names]])
    return float(ndcg_score(rel, score))
