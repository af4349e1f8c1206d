"""application/json: SageMaker JSON (`{"instances": rows}`, a list of rows, one flat row, `{"inputs": {name:
data}}`) and, told apart by shape, KServe V2 JSON (`{"inputs": [tensor, ...]}` / `{"outputs": [...]}`).

Responses are `{"predictions": [{output: value, ...}, ...]}`, one object per row. Parsing is orjson's:
nesting deeper than 1024 and numbers out of double range are malformed JSON, answered with a 400.
"""

from __future__ import annotations

from itertools import repeat

import numpy as np
import orjson

from core.errors import FerryError, bad_request
from core.payloads import v2
from core.payloads.base import INPUT, Codec, Side, Tensors, tensors_rows


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
                raise FerryError(bad_request(
                    'JSON bodies are {"instances": [[...], ...]}, a list of rows, or {"inputs": {name: data}}'))
            doc = doc["instances"]
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
