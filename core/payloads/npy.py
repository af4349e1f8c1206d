"""application/x-npy: one numeric .npy array in (rows), the outputs side by side as float64 out.

The header is checked before any data is read: a numeric dtype, a shape that the bytes sent actually
hold, no pickles, no .npz archives.
"""

from __future__ import annotations

import ast
import io
import math

import numpy as np

from core.errors import FerryError, bad_request, not_acceptable
from core.payloads.base import Codec, Side

MAGIC = b"\x93NUMPY"


class NpyCodec(Codec):
    media_type = "application/x-npy"

    def decode(self, body: bytes) -> np.ndarray:
        try:
            arr = _load(body)
        except ValueError as err:
            raise FerryError(bad_request(f"the body is not a valid .npy array: {str(err)[:200]}")) from None
        if arr.ndim == 0 or arr.size == 0:
            raise FerryError(bad_request(f"the .npy array must hold at least one row, got shape {list(arr.shape)}"))
        return arr.reshape(1, -1) if arr.ndim == 1 else arr

    def encode(self, outputs: dict[str, np.ndarray]) -> bytes:
        text = [n for n, a in outputs.items() if np.asarray(a).dtype.kind not in "biuf"]
        if text:
            raise FerryError(not_acceptable(f"output(s) {text[:10]} are not numeric: .npy answers hold numbers; "
                                            "ask for application/json or text/csv"))
        blocks = [np.asarray(a).reshape(np.asarray(a).shape[0], -1).astype(np.float64) if np.ndim(a)
                  else np.asarray(a, dtype=np.float64).reshape(1, 1) for a in outputs.values()]
        buf = io.BytesIO()
        np.save(buf, np.hstack(blocks), allow_pickle=False)
        return buf.getvalue()

    def read_one(self, body: bytes, side: Side, content_type: str | None = None) -> tuple[np.ndarray, None]:
        arr = _load(body)
        return (arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(arr.shape[0], -1)), None


def _load(body: bytes) -> np.ndarray:
    """np.load after validating the header against the body (ValueError says what is wrong)."""
    if not body.startswith(MAGIC) or len(body) < 10:
        raise ValueError("missing the .npy magic string (an .npz archive or another format?)")
    major = body[6]
    if major == 1:
        hlen, start = int.from_bytes(body[8:10], "little"), 10
    elif major in (2, 3):
        hlen, start = int.from_bytes(body[8:12], "little"), 12
    else:
        raise ValueError(f"unsupported .npy format version {major}")
    try:
        header = ast.literal_eval(body[start:start + hlen].decode("latin-1"))
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise ValueError("the .npy header is malformed") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError("the .npy header is malformed")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"the .npy shape {shape!r} is not a tuple of non-negative integers")
    try:
        dtype = np.dtype(header["descr"])
    except (TypeError, ValueError):
        raise ValueError(f"unknown dtype {header['descr']!r}") from None
    if dtype.kind not in "biuf" or dtype.hasobject:
        raise ValueError(f"the array must be numeric, got {dtype}")
    need = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if need != len(body) - start - hlen:
        raise ValueError(f"the header's shape {list(shape)} needs {need} bytes of data, the body has "
                         f"{len(body) - start - hlen}")
    return np.load(io.BytesIO(body), allow_pickle=False)


NPY = NpyCodec()
