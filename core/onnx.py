"""onnxruntime wrapped for serving: one InferenceSession, its tensor metadata, validated inputs.

Inputs are checked against the model's declared names, dtypes and shapes before the session runs, so a
client mistake is a 400 that names the tensor, never an onnxruntime crash. Classifier ZipMap outputs
(sequences of maps) come back as 2-D arrays in label order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from core.dtypes import NUMPY_TO_V2, ORT_TO_NUMPY, V2_TO_NUMPY
from core.errors import FerryError, bad_request, model_error, quote

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TensorMeta:
    """A model input or output as the V2 protocol describes it (-1 = variable dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def dtype(self) -> np.dtype:
        return V2_TO_NUMPY[self.datatype]

    def as_dict(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _meta(arg) -> TensorMeta:
    if arg.type in ORT_TO_NUMPY:
        dtype = NUMPY_TO_V2[np.dtype(ORT_TO_NUMPY[arg.type])]
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or []))
    else:  # seq(map(...)) from a ZipMap: served as a 2-D FP32 array
        dtype, shape = "FP32", (-1, -1)
    return TensorMeta(arg.name, dtype, shape)


def load_bytes(path: str) -> bytes:
    """Read a model artifact from a local path or any fsspec URI."""
    if "://" in path and not path.startswith("file://"):
        import fsspec

        with fsspec.open(path, "rb") as f:
            return f.read()
    with open(path.removeprefix("file://"), "rb") as f:
        return f.read()


def feature_names(path: str) -> list[str] | None:
    """The comma-separated `feature_names` entry of an ONNX model's metadata (how `ferry demo` and
    `ferry explain` name headerless columns), if it has one."""
    import onnx

    meta = {p.key: p.value for p in onnx.load_model_from_string(load_bytes(path)).metadata_props}
    return [n.strip() for n in meta.get("feature_names", "").split(",") if n.strip()] or None


class OnnxModel:
    """One onnxruntime session with validated, dtype-exact inference."""

    def __init__(self, model, input_names: list[str] | None = None,
                 output_names: list[str] | None = None, intra_op_threads: int = 1, inter_op_threads: int = 1):
        """model: a path or URI, the model's bytes, or an onnxruntime.InferenceSession already made."""
        import onnxruntime as ort

        if isinstance(model, ort.InferenceSession):
            self.session = model
        else:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = intra_op_threads
            opts.inter_op_num_threads = inter_op_threads
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            data = bytes(model) if isinstance(model, (bytes, bytearray)) else load_bytes(model)
            self.session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        all_in = [_meta(a) for a in self.session.get_inputs()]
        all_out = [_meta(a) for a in self.session.get_outputs()]
        # the session's own run: InferenceSession.run's checks (inputs present, device values, graph capture) hold
        # for every feed made here (from_matrix, validate), and cost ~1 us a call
        self._run = self.session._sess.run
        self.inputs = _select(all_in, input_names, "input")
        self.outputs = _select(all_out, output_names, "output")
        self._zipmap = {a.name for a in self.session.get_outputs() if a.type not in ORT_TO_NUMPY}
        self.default_outputs = tuple(t.name for t in self.outputs)
        self._default_list = list(self.default_outputs)
        self._output_set = frozenset(self.default_outputs)
        # a single numeric [n, width] input: a numeric matrix of that width is its feed after one cast (from_matrix)
        one = self.inputs[0] if len(self.inputs) == 1 else None
        self._plain_matrix = (one is not None and len(one.shape) == 2 and one.shape[0] < 0 and one.shape[1] > 0
                              and one.dtype.kind in "fiub")
        self._plain_dtype = one.dtype if self._plain_matrix else None

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def from_matrix(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Map a 2-D numeric matrix (CSV/JSON/NPY rows) onto the model's single input."""
        if len(self.inputs) != 1:
            raise FerryError(bad_request(
                f"this model takes {len(self.inputs)} inputs {self.input_names}; send named tensors "
                "(JSON {\"inputs\": {name: data}} or the V2 protocol)"))
        meta = self.inputs[0]
        if (self._plain_matrix and type(rows) is np.ndarray and rows.ndim == 2 and rows.shape[1] == meta.shape[1]
                and rows.dtype.kind in "fiub"):  # what _cast does to it, without its general checks
            return {meta.name: rows if rows.dtype == self._plain_dtype else rows.astype(self._plain_dtype)}
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if len(meta.shape) == 2 and meta.shape[1] > 0 and rows.shape[1] != meta.shape[1]:
            raise FerryError(bad_request(
                f"expected {meta.shape[1]} columns per row for input {meta.name!r}, got {rows.shape[1]}"))
        return {meta.name: _cast(rows, meta, strict=False)}

    def validate(self, inputs: dict[str, np.ndarray], strict_dtype: bool = True) -> dict[str, np.ndarray]:
        """Check names, dtypes and shapes; return the feed for the session."""
        known = {t.name: t for t in self.inputs}
        unknown = sorted(set(inputs) - set(known))
        if unknown:
            raise FerryError(bad_request(f"unknown input(s) {', '.join(quote(n) for n in unknown[:10])}; "
                                         f"the model takes {self.input_names}"))
        missing = [n for n in known if n not in inputs]
        if missing:
            raise FerryError(bad_request(f"missing input(s) {missing}; the model takes {self.input_names}"))
        return {n: _cast(inputs[n], known[n], strict=strict_dtype) for n in known}

    def run(self, feed: dict[str, np.ndarray], output_names=None) -> dict[str, np.ndarray]:
        """Run the session on a validated feed; model failures become ModelError (424)."""
        names = output_names or self.default_outputs
        if names is not self.default_outputs and not self._output_set.issuperset(names):
            bad = sorted(set(names) - self._output_set)
            raise FerryError(bad_request(f"unknown output(s) {', '.join(quote(b) for b in bad[:10])}; "
                                         f"the model gives {self.output_names}"))
        try:
            results = self._run(self._default_list if names is self.default_outputs else list(names), feed, None)
        except Exception as err:  # onnxruntime raises its own exception types
            raise FerryError(model_error(f"the model failed: {str(err)[:500]}")) from None
        if not self._zipmap:
            return dict(zip(names, results))
        return {n: self._as_array(n, r) for n, r in zip(names, results)}

    def _as_array(self, name: str, value) -> np.ndarray:
        if name in self._zipmap:
            keys = sorted(value[0]) if value else []
            return np.array([[row[k] for k in keys] for row in value], dtype=np.float32)
        return np.asarray(value)


def _select(metas: list[TensorMeta], names: list[str] | None, kind: str) -> list[TensorMeta]:
    if not names:
        return metas
    by_name = {m.name: m for m in metas}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"model has no {kind}(s) {missing}; it has {list(by_name)}")
    return [by_name[n] for n in names]


def _cast(arr: np.ndarray, meta: TensorMeta, strict: bool) -> np.ndarray:
    arr = np.asarray(arr)
    want = meta.dtype
    if want == np.object_ and arr.dtype == np.object_:  # V2 BYTES arrive as bytes; onnxruntime wants str
        arr = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in arr.ravel()],
                       dtype=object).reshape(arr.shape)
    if arr.dtype != want:
        if strict and not (arr.dtype.kind in "US" and want == np.object_):
            raise FerryError(bad_request(
                f"input {meta.name!r} has datatype {NUMPY_TO_V2.get(arr.dtype, str(arr.dtype))}; "
                f"the model expects {meta.datatype}"))
        try:
            arr = arr.astype(want, casting="unsafe" if want != np.object_ else "unsafe")
        except (TypeError, ValueError) as err:
            raise FerryError(bad_request(
                f"input {meta.name!r} cannot be read as {meta.datatype}: {str(err)[:200]}")) from None
    if meta.shape:
        if arr.ndim != len(meta.shape):
            raise FerryError(bad_request(
                f"input {meta.name!r} has shape {list(arr.shape)}; the model expects {list(meta.shape)}"))
        for got, exp in zip(arr.shape, meta.shape):
            if exp >= 0 and got != exp:
                raise FerryError(bad_request(
                    f"input {meta.name!r} has shape {list(arr.shape)}; the model expects {list(meta.shape)}"))
    return arr
