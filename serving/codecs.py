"""SageMaker runtime content types: request bodies to arrays, outputs to response bodies.

Requests: ``text/csv`` (numeric rows, no header), ``application/json`` (``{"instances": rows}``, a list of
rows, one flat row, or ``{"inputs": {name: data}}`` for models with several inputs) and
``application/x-npy``. Responses (chosen by Accept, defaulting to the request's type): CSV has one line
per row with every output's values side by side; JSON is ``{"predictions": [{output: value}, ...]}``;
NPY is the same side-by-side matrix as CSV, as float64.
"""

from __future__ import annotations

import io
import json

import numpy as np

from core.errors import FerryError, bad_request, not_acceptable, unsupported_media

CSV, JSON, NPY = "text/csv", "application/json", "application/x-npy"
SUPPORTED = (CSV, JSON, NPY)


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def decode(body: bytes, content_type: str | None) -> np.ndarray | dict[str, np.ndarray]:
    """Parse a request body into a row matrix, or named tensors for multi-input models."""
    kind = media_type(content_type)
    if not body.strip():
        raise FerryError(bad_request("the request body is empty"))
    if kind == CSV:
        return decode_csv(body)
    if kind == JSON:
        return decode_json(body)
    if kind == NPY:
        return decode_npy(body)
    raise FerryError(unsupported_media(
        f"unsupported Content-Type {content_type!r}; use one of {', '.join(SUPPORTED)}"))


def decode_csv(body: bytes) -> np.ndarray:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FerryError(bad_request("the CSV body is not UTF-8 text")) from None
    lines = np.array([ln for ln in text.strip().replace("\r", "").split("\n") if ln.strip()])
    widths = np.char.count(lines, ",") + 1
    if (widths != widths[0]).any():
        row = int(np.argmax(widths != widths[0]))
        raise FerryError(bad_request(
            f"CSV row {row + 1} has {widths[row]} columns; row 1 has {widths[0]} (rows need the same count)"))
    tokens = ",".join(lines.tolist()).split(",")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        where = tokens.index(bad)
        raise FerryError(bad_request(
            f"CSV value {bad!r} in row {where // widths[0] + 1}, column {where % widths[0] + 1} is not a number")) from None
    return values.reshape(len(lines), int(widths[0]))


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def decode_json(body: bytes) -> np.ndarray | dict[str, np.ndarray]:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FerryError(bad_request(f"the body is not valid JSON: {err}")) from None
    if isinstance(doc, dict):
        if isinstance(doc.get("inputs"), dict):
            return {str(k): _array(v, f"inputs.{k}") for k, v in doc["inputs"].items()}
        if "instances" not in doc:
            raise FerryError(bad_request(
                'JSON bodies are {"instances": [[...], ...]}, a list of rows, or {"inputs": {name: data}}'))
        doc = doc["instances"]
    rows = _array(doc, "instances", numeric=True)
    if rows.size == 0:
        raise FerryError(bad_request("instances must be a non-empty list of rows"))
    if rows.ndim == 1:
        rows = rows.reshape(1, -1)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise FerryError(bad_request(f"instances must be a non-empty list of rows, got shape {list(rows.shape)}"))
    return rows


def _array(value, where: str, numeric: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64 if numeric else None)
    except (ValueError, TypeError):
        raise FerryError(bad_request(
            f"{where} must be a rectangular array{' of numbers' if numeric else ''}")) from None
    if arr.dtype == object:
        raise FerryError(bad_request(f"{where} must be a rectangular array (rows of equal length)"))
    return arr


def decode_npy(body: bytes) -> np.ndarray:
    try:
        arr = np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise FerryError(bad_request(f"the body is not a valid .npy array: {err}")) from None
    if arr.dtype.kind not in "biuf":
        raise FerryError(bad_request(f"the .npy array must be numeric, got {arr.dtype}"))
    return arr


def choose_accept(accept: str | None, content_type: str | None) -> str:
    """The response type: the first supported type in Accept, else the request's own type."""
    wanted = [media_type(a) for a in (accept or "").split(",") if a.strip()]
    for w in wanted:
        if w in SUPPORTED:
            return w
    if not wanted or any(w in ("*/*", "") for w in wanted):
        req = media_type(content_type)
        return req if req in SUPPORTED else JSON
    raise FerryError(not_acceptable(f"unsupported Accept {accept!r}; use one of {', '.join(SUPPORTED)}"))


def side_by_side(outputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Every output as a [rows, k] block, in output order."""
    blocks = []
    for arr in outputs.values():
        a = np.asarray(arr)
        blocks.append(a.reshape(a.shape[0], -1) if a.ndim else a.reshape(1, 1))
    return blocks


def encode(outputs: dict[str, np.ndarray], accept: str) -> bytes:
    """Serialize model outputs in the chosen response type."""
    if accept == CSV:
        return encode_csv(outputs)
    if accept == NPY:
        buf = io.BytesIO()
        np.save(buf, np.hstack([b.astype(np.float64) for b in side_by_side(outputs)]), allow_pickle=False)
        return buf.getvalue()
    names = list(outputs)
    cols = [np.asarray(outputs[n]).tolist() for n in names]
    return json.dumps({"predictions": [dict(zip(names, vals)) for vals in zip(*cols)]}).encode()


def encode_csv(outputs: dict[str, np.ndarray]) -> bytes:
    blocks = side_by_side(outputs)
    parts = []
    for b in blocks:
        if b.dtype.kind in "biu":
            parts.append(b.astype(np.int64).astype(str))
        elif b.dtype.kind == "f":
            parts.append(np.char.mod("%.9g", b))
        else:
            parts.append(b.astype(str))
    cells = np.hstack(parts)
    return ("\n".join(",".join(r) for r in cells.tolist()) + "\n").encode()
