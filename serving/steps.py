"""The steps of an inference pipeline, and what flows between them.

What flows is a `Payload`, as the data plane decodes it from the request:

- named tensors: ``dict[str, np.ndarray]``, rows on every array's first axis, the same row count for all
  (JSON objects, ``{"inputs": {...}}``, V2 tensors; a table's columns), or
- a row matrix: one 2-D array, when nothing names the columns (CSV, JSON lists of rows, NPY).

Each step takes one and returns one (`Step.run`), raising FerryError with the HTTP status of what went
wrong; the pipeline names the step in the message.

- `PythonStep` calls a user's ``module:function`` (or an instance of ``module:Class``) with the named
  tensors as a dict (the matrix as a 2-D array when the rows have no names), or with a pandas DataFrame when
  the step ``takes: table``. It returns a DataFrame (its columns become named tensors), a dict of arrays, or
  an array (a row matrix). Raising ValueError or KeyError means the input is wrong: a 400; any other
  exception is the step failing: a 424 (SageMaker's ModelError).
- `ModelStep` runs an ONNX model: a matrix, or tensors named as the model's inputs, go in as they are;
  other named columns of a one-input model are laid side by side, in order, as its rows (a table returned
  by a pre-processing step feeds the model that way). Its outputs are named tensors.
- `LookupStep` reads the ids of an id column (or of a one-column matrix), fetches numeric features from the
  online store (featurestore/lookup.py), and returns them as columns in the configured order, followed by
  the request's other columns; a request column named like a feature overrides the stored value.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import sys
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from core.errors import FerryError, InferenceError, bad_request, model_error, unavailable
from serving.dataplane import Payload
from serving.spec import FeatureLookupSpec, ModelSpec, StepSpec

if TYPE_CHECKING:
    from featurestore.settings import FeatureStoreConfig

log = logging.getLogger(__name__)
VALUE_KINDS = frozenset("biufOUS")  # numbers, booleans, strings: what the codecs encode
MATRIX = "output"  # the name a row matrix gets when it is the pipeline's answer


class Step(Protocol):
    async def run(self, data: Payload) -> Payload: ...
    async def metadata(self) -> dict: ...
    async def ready(self) -> bool: ...


# ---- the data contract


def as_table(data: Payload) -> pd.DataFrame:
    """Named tensors (1-D columns; an [n, k] tensor as columns name_0..) or the matrix as a DataFrame."""
    if data.named is None:
        return pd.DataFrame(data.matrix)
    columns = {}
    for name, arr in data.named.items():
        if arr.ndim == 1:
            columns[name] = arr
        elif arr.ndim == 2:
            columns |= {f"{name}_{i}": arr[:, i] for i in range(arr.shape[1])} if arr.shape[1] != 1 else {name: arr[:, 0]}
        else:
            raise FerryError(bad_request(f"tensor {name!r} has shape {list(arr.shape)}: a table takes columns "
                                         "(1-D) or rows of values (2-D)"))
    return pd.DataFrame(columns, copy=False)


def as_payload(value) -> Payload:
    """What a Python step returned as the next step's input; a FerryError (424) says what is wrong with it."""
    if isinstance(value, pd.DataFrame):
        if value.columns.has_duplicates:
            raise FerryError(model_error(f"returned a DataFrame with repeated columns {list(value.columns)[:20]}"))
        return Payload(named=check_tensors({str(c): value[c].to_numpy() for c in value.columns}))
    if isinstance(value, dict):
        return Payload(named=check_tensors({str(k): np.asarray(v) for k, v in value.items()}))
    if isinstance(value, np.ndarray):
        matrix = value.reshape(-1, 1) if value.ndim == 1 else value
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise FerryError(model_error(f"returned an array of shape {list(value.shape)}; return rows (2-D) "
                                         "or one value per row (1-D)"))
        check_tensors({MATRIX: matrix})
        return Payload(matrix=matrix)
    raise FerryError(model_error(f"returned {type(value).__name__}; return a pandas DataFrame, a dict of arrays "
                                 "or a numpy array"))


def check_tensors(named: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Named tensors that the next step and every codec can take: rows first, one row count, plain values."""
    if not named:
        raise FerryError(model_error("returned no columns"))
    rows = {}
    for name, arr in named.items():
        if arr.ndim == 0:
            raise FerryError(model_error(f"returned {name!r} as a single value; give one value per row"))
        if arr.dtype.kind not in VALUE_KINDS:
            raise FerryError(model_error(f"returned {name!r} of dtype {arr.dtype}; steps exchange numbers, "
                                         "booleans and strings"))
        rows[name] = arr.shape[0]
    if len(set(rows.values())) != 1:
        raise FerryError(model_error(f"returned columns with different row counts: {dict(list(rows.items())[:10])}"))
    return named


def decoded_strings(data: Payload) -> Payload:
    """V2 BYTES tensors arrive as bytes: give steps str, as JSON requests do."""
    if data.named is None:
        return data
    named = dict(data.named)
    for name, arr in named.items():
        if arr.dtype == object and arr.size and isinstance(arr.flat[0], bytes):
            named[name] = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                                    for v in arr.ravel()], dtype=object).reshape(arr.shape)
    return Payload(named=named, strict_dtype=data.strict_dtype)


# ---- python steps


def load_callable(ref: str, path: str, init_args: dict | None = None):
    """`module:function` (or `module:Class`, made with init_args) imported with `path` first on sys.path;
    ValueError says why it cannot be."""
    module_name, _, attr = ref.partition(":")
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - a user's module: any import error is a configuration error
        raise ValueError(f"cannot import {module_name!r} (from {path}): {type(err).__name__}: {err}") from None
    target = getattr(module, attr, None)
    if target is None:
        raise ValueError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no {attr!r}")
    if inspect.isclass(target):
        try:
            target = target(**(init_args or {}))
        except Exception as err:  # noqa: BLE001 - the user's constructor
            raise ValueError(f"{ref}({', '.join(init_args or {})}) failed: {type(err).__name__}: {err}") from None
    elif init_args:
        raise ValueError(f"init_args: {ref} is a function, not a class")
    if not callable(target):
        raise ValueError(f"{ref} is not callable")
    return target


class PythonStep:
    """A user's pre- or post-processing function, called in this process."""

    def __init__(self, spec: StepSpec):
        self.name = spec.name
        self.fn = load_callable(spec.python, spec.path, spec.init_args)
        self.takes_table = spec.takes == "table"

    async def metadata(self) -> dict:
        return {"inputs": [], "outputs": []}

    async def ready(self) -> bool:
        return True

    async def run(self, data: Payload) -> Payload:
        arg = as_table(data) if self.takes_table else data.named if data.named is not None else data.matrix
        try:
            out = self.fn(arg)
            if inspect.isawaitable(out):
                out = await out
        except FerryError:
            raise
        except KeyError as err:
            raise FerryError(bad_request(f"missing {str(err.args[0] if err.args else '')[:100]!r}")) from None
        except ValueError as err:
            raise FerryError(bad_request(str(err)[:500] or "invalid input")) from None
        except Exception as err:  # noqa: BLE001 - the user's code failed: the step's error, not the caller's
            log.warning("pipeline step %s failed", self.name, exc_info=True)
            raise FerryError(model_error(f"failed: {type(err).__name__}: {str(err)[:300]}")) from None
        return as_payload(out)


# ---- model steps


class ModelStep:
    """An ONNX model through its runner (ModelRunner, with the step's batching)."""

    def __init__(self, runner):
        self.runner = runner
        self.inputs = runner.model.inputs

    async def metadata(self) -> dict:
        return await self.runner.metadata()

    async def ready(self) -> bool:
        return True

    async def run(self, data: Payload) -> Payload:
        result = await self.runner.infer(self.feed(data))
        if result.error is not None:
            raise FerryError(result.error)
        return Payload(named=result.outputs)

    def feed(self, data: Payload) -> Payload:
        """The payload as the model takes it (see the module docstring)."""
        if data.named is None or set(data.named) == {t.name for t in self.inputs}:
            return data
        if len(self.inputs) != 1:
            raise FerryError(bad_request(f"the model takes inputs {[t.name for t in self.inputs]}; got "
                                         f"{list(data.named)[:20]}"))
        text = [n for n, a in data.named.items() if a.dtype.kind not in "biuf"]
        if text:
            raise FerryError(bad_request(f"column(s) {text[:10]} are not numeric: the model takes numbers "
                                         "(encode them in an earlier step)"))
        blocks = [a.reshape(a.shape[0], -1) for a in data.named.values()]
        return Payload(matrix=blocks[0] if len(blocks) == 1 else np.hstack(blocks))


# ---- feature lookup steps


_stores: dict[str, object] = {}


def feature_store(features: FeatureStoreConfig):
    """The one FeatureStore of this process for a deploy file's feature store (ferry.app's), shared by the
    gateway's REST API and its lookup steps."""
    from featurestore.store import FeatureStore

    key = features.model_dump_json()
    if key not in _stores:
        _stores[key] = FeatureStore(features.settings, features.groups)
    return _stores[key]


def lookup_columns(spec: FeatureLookupSpec, group) -> tuple[str, list[str]]:
    """The id column and the features a lookup step returns; ValueError names the field that is wrong."""
    from featurestore.lookup import check_features, numeric_features

    features = spec.features or numeric_features(group)
    check_features(group, features)
    return spec.id_column or group.record_identifier, features


class LookupStep:
    """Features of the rows' ids from the online store, joined to the rows."""

    def __init__(self, spec: FeatureLookupSpec, store):
        from featurestore.lookup import FeatureLookup

        group = store.group(spec.feature_group)
        self.id_column, self.features = lookup_columns(spec, group)
        self.id_type = "INT64" if group.feature(group.record_identifier).type.value == "Integral" else "BYTES"
        self.keep_id = spec.keep_id
        self.lookup = FeatureLookup(store, spec.feature_group, self.features, spec.on_missing)

    async def metadata(self) -> dict:
        return {"inputs": [{"name": self.id_column, "datatype": self.id_type, "shape": [-1]}],
                "outputs": [{"name": f, "datatype": "FP32", "shape": [-1]} for f in self.features]}

    async def ready(self) -> bool:
        return True

    async def run(self, data: Payload) -> Payload:
        from featurestore.online.base import StoreUnavailable
        from featurestore.records import RecordError

        ids = self.ids(data)
        try:
            matrix = await asyncio.to_thread(self.lookup, ids)
        except RecordError as err:
            raise FerryError(bad_request(str(err).removeprefix("record_ids: "))) from None
        except StoreUnavailable as err:
            raise FerryError(unavailable(f"the online store is unavailable: {str(err)[:200]}")) from None
        given = dict(data.named or {})
        if not self.keep_id:
            given.pop(self.id_column, None)
        named = {f: given.pop(f) if f in given else matrix[:, i] for i, f in enumerate(self.features)}
        return Payload(named=named | given)

    def ids(self, data: Payload) -> list:
        """The record ids: the id column, or the only column of a matrix; ints for integral numbers."""
        if data.named is not None:
            if self.id_column not in data.named:
                raise FerryError(bad_request(f"the rows need an id column {self.id_column!r}; got "
                                             f"{list(data.named)[:20]}"))
            col = data.named[self.id_column]
        elif data.matrix.shape[1] == 1:
            col = data.matrix
        else:
            raise FerryError(bad_request(f"send the record ids as column {self.id_column!r} (or one id per row); "
                                         f"got rows of {data.matrix.shape[1]} values"))
        if col.ndim == 2 and col.shape[1] == 1:
            col = col[:, 0]
        if col.ndim != 1:
            raise FerryError(bad_request(f"{self.id_column!r} must hold one id per row, got shape {list(col.shape)}"))
        if col.dtype.kind == "f":
            if not np.isfinite(col).all() or (col != np.round(col)).any():
                raise FerryError(bad_request(f"{self.id_column!r} holds numbers that are not whole: ids are "
                                             "whole numbers or strings"))
            col = col.astype(np.int64)
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in col.tolist()]


# ---- building a step


def make_step(spec: StepSpec, models: dict[str, ModelSpec], features: FeatureStoreConfig | None) -> Step:
    """A step that runs in this process."""
    if spec.kind == "python":
        return PythonStep(spec)
    if spec.kind == "model":
        from serving.variants import ModelRunner

        return ModelStep(ModelRunner(models[spec.model], spec.name, spec.batching))
    if features is None:
        raise ValueError(f"step {spec.name!r}: feature_lookup needs the deploy file's feature_groups")
    return LookupStep(spec.feature_lookup, feature_store(features))


def step_error(step: str, error: InferenceError) -> InferenceError:
    """The error with the failing step named (its status kept: a step's 4xx stays a 4xx)."""
    return InferenceError(error.status, error.error_type, error.grpc_code, f"step {step!r}: {error.message}")
