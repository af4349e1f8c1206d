"""application/json: SageMaker JSON (`{"instances": rows}`, a list of rows, one flat row, `{"inputs": {name:
data}}`), objects with named values (a list of them, or `{"instances": [...]}`, or one object: named columns,
strings allowed) and, told apart by shape, KServe V2 JSON (`{"inputs": [tensor, ...]}` / `{"outputs": [...]}`).

Responses are `{"predictions": [{output: value, ...}, ...]}`, one object per row. Parsing is orjson's:
nesting deeper than 1024 and numbers out of double range are malformed JSON, answered with a 400.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter

import numpy as np
import orjson

from core.errors import FerryError, bad_request
from core.payloads import v2
from core.payloads.base import INPUT, Codec, Side, Tensors, tensors_rows

SCALARS = (str, int, float, bool, type(None))


def loads(body: bytes | str, what: str = "the body"):
    """Parse JSON; malformed input (including too deep or out-of-range numbers) is a 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise FerryError(bad_request(f"{what} is not valid JSON: {str(err)[:200]}")) from None


class JsonCodec(Codec):
    media_type = "application/json"

    def decode(self, body: bytes) -> Tensors:
        doc = loads(body)
        if isinstance(doc, dict):
            inputs = doc.get("inputs")
            if isinstance(inputs, dict):
                return {str(k): _array(v, f"inputs.{k}") for k, v in inputs.items()}
            if isinstance(inputs, list):
                return v2.parse_document(doc, memoryview(b"")).inputs
            if "instances" not in doc:
                if doc and all(isinstance(v, SCALARS) for v in doc.values()):
                    return _records([doc])  # one object of named values: one row
                raise FerryError(bad_request(
                    'JSON bodies are {"instances": [[...], ...]}, a list of rows, a list of objects, one object '
                    'of named values, or {"inputs": {name: data}}'))
            doc = doc["instances"]
        if isinstance(doc, list) and doc and isinstance(doc[0], dict):
            return _records(doc)
        rows = _array(doc, "instances", numeric=True)
        if rows.ndim == 1 and rows.size:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
            raise FerryError(bad_request(f"instances must be a non-empty list of rows, got shape {list(rows.shape)}"))
        return rows

    def encode(self, outputs: dict[str, np.ndarray]) -> bytes:
        names = list(outputs)
        columns = [np.asarray(a).tolist() for a in outputs.values()]
        # one object per row, built by C-level map/zip (no Python loop over rows)
        return orjson.dumps({"predictions": list(map(dict, map(zip, repeat(names), zip(*columns))))})

    def read_one(self, body: bytes, side: Side, content_type: str | None = None) -> tuple[np.ndarray, list[str] | None]:
        doc = orjson.loads(body)
        if isinstance(doc, dict):
            for key in ("inputs", "outputs"):
                tensors = doc.get(key)
                if isinstance(tensors, list) and tensors and isinstance(tensors[0], dict):
                    named = v2.parse_document({"inputs": tensors}, memoryview(b"")).inputs
                    return _named_rows(named, side)
            if isinstance(doc.get("inputs"), dict):
                return _named_rows({k: np.asarray(v) for k, v in doc["inputs"].items()}, side)
            for key in ("instances", "predictions", "features"):
                if key in doc:
                    return _json_rows(doc[key], side, one_row=key == "features")
            return _json_rows([doc], side)
        return _json_rows(doc, side)


def _named_rows(named: dict[str, np.ndarray], side: Side) -> tuple[np.ndarray, list[str] | None]:
    rows, names = tensors_rows(named)
    return rows, None if side == INPUT and len(named) == 1 else names  # one input tensor is the feature row


def _json_rows(value, side: Side, one_row: bool = False) -> tuple[np.ndarray, list[str] | None]:
    """Rows of a JSON list: objects (named columns), lists (positional), or scalars (a flat list is
    one input row, but one output per row)."""
    if not isinstance(value, list):
        value = [value]
    if one_row or (value and not isinstance(value[0], (list, dict))):
        value = [value] if side == INPUT or one_row else [[v] for v in value]
    if value and isinstance(value[0], dict):
        names = list(value[0])
        named = {n: np.asarray([row[n] for row in value]) for n in names}
        return tensors_rows(named)
    rows = np.asarray(value)
    if rows.dtype == object or rows.ndim != 2:
        raise ValueError(f"rows are not a rectangular table (shape {list(rows.shape)})")
    return rows, None


def _records(rows: list) -> dict[str, np.ndarray]:
    """JSON objects (one per row, the same keys in each) as named columns."""
    names = list(rows[0])
    if not names:
        raise FerryError(bad_request("instances: an object with no fields"))
    if not all(isinstance(r, dict) for r in rows) or set(map(len, rows)) != {len(names)}:
        raise FerryError(bad_request(f"instances: every row must be an object with the fields {names[:20]}"))
    try:
        values = list(map(itemgetter(*names), rows))  # C-level: no Python loop over rows
    except KeyError as err:
        raise FerryError(bad_request(f"instances: a row lacks the field {str(err.args[0])[:80]!r}")) from None
    columns = zip(*values) if len(names) > 1 else [values]
    return {str(n): _column(list(col), str(n)[:80]) for n, col in zip(names, columns)}


def _column(values: list, name: str) -> np.ndarray:
    """One field of every object: numbers, strings or rows of numbers; nulls and mixed scalars kept as objects."""
    try:
        arr = np.asarray(values)
    except ValueError:  # ragged nested lists
        arr = np.empty(0, dtype=object)
    if arr.dtype == object and (not arr.size or any(isinstance(v, (list, dict)) for v in values)):
        raise FerryError(bad_request(f"field {name!r} must hold a value (or a list of equal length) in every row"))
    return arr


def _array(value, where: str, numeric: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64 if numeric else None)
    except (ValueError, TypeError, OverflowError):
        raise FerryError(bad_request(
            f"{where} must be a rectangular array{' of numbers' if numeric else ''}")) from None
    if arr.dtype == object:
        raise FerryError(bad_request(f"{where} must be a rectangular array (rows of equal length)"))
    if arr.ndim == 0:
        raise FerryError(bad_request(f"{where} must be an array, not a single value"))
    return arr


JSON = JsonCodec()
