"""text/csv: numeric rows without a header, one per line; responses put every output side by side."""

from __future__ import annotations

import io
import re
from itertools import chain

import numpy as np
import orjson
import pandas as pd

from core.errors import FerryError, bad_request
from core.payloads.base import Codec, Side, Table

FLOAT_FORMAT = "{:.9g}".format  # float32 round-trips exactly in 9 significant digits


class CsvCodec(Codec):
    media_type = "text/csv"

    def decode(self, body: bytes) -> np.ndarray:
        try:
            text = body.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise FerryError(bad_request("the CSV body is not UTF-8 text")) from None
        if not text:
            raise FerryError(bad_request("the request body is empty"))
        if "\n" not in text and "\r" not in text:  # one row: the common case, no array machinery
            fast = _plain_numbers(body)
            if fast is not None:
                return fast.reshape(1, -1)
            tokens = text.split(",")
            return _numbers(tokens, len(tokens)).reshape(1, -1)
        lines = np.array(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
        lines = lines[np.char.str_len(np.char.strip(lines)) > 0]
        widths = np.char.count(lines, ",") + 1
        bad = np.flatnonzero(widths != widths[0])
        if bad.size:
            row = int(bad[0])
            raise FerryError(bad_request(
                f"CSV row {row + 1} has {widths[row]} columns; row 1 has {widths[0]} (rows need the same count)"))
        width = int(widths[0])
        joined = ",".join(lines.tolist())
        fast = _plain_numbers(joined.encode())
        if fast is not None and fast.size == width * len(lines):
            return fast.reshape(len(lines), width)
        return _numbers(joined.split(","), width).reshape(len(lines), width)

    def encode(self, outputs: dict[str, np.ndarray]) -> bytes:
        arrays, key = [], []  # one plain loop: comprehensions are calls of their own (this runs per request)
        for a in outputs.values():
            if type(a) is not np.ndarray:
                a = np.asarray(a)
            arrays.append(a)
            key.append((a.dtype, a.shape))
        key = tuple(key)
        fmt = _ONE_ROW.get(key)
        if fmt is None and len(_ONE_ROW) < _ONE_ROW_MAX:
            fmt = _ONE_ROW[key] = _one_row_format(arrays)
        if fmt:  # one row of numbers: one %-format (the same text as the general path below)
            values: list = []
            for a in arrays:
                values += a.ravel().tolist()
            return (fmt % tuple(values)).encode()
        blocks = []
        for arr in outputs.values():
            a = np.asarray(arr)
            blocks.append(a.reshape(1, 1) if a.ndim == 0 else a.reshape(a.shape[0], -1))
        if blocks[0].shape[0] == 1:  # one row: the common case
            return (",".join(",".join(map(_formatter(b), b[0].tolist())) for b in blocks) + "\n").encode()
        specs = [_PERCENT.get(b.dtype.str) or _PERCENT.get(b.dtype.kind) for b in blocks]
        if all(specs) and blocks[0].shape[0]:  # numbers: one %-format of all rows, each value as _formatter writes it
            row = ",".join(spec for b, spec in zip(blocks, specs) for _ in range(b.shape[1])) + "\n"
            columns = [b[:, j].tolist() for b in blocks for j in range(b.shape[1])]
            values = chain.from_iterable(zip(*columns))
            return ((row * blocks[0].shape[0]) % tuple(values)).encode()
        columns = [map(_formatter(b), b[:, j].tolist()) for b in blocks for j in range(b.shape[1])]
        return ("\n".join(map(",".join, zip(*columns))) + "\n").encode()

    def read_one(self, body: bytes, side: Side, content_type: str | None = None) -> tuple[pd.DataFrame, None]:
        return _parse_lines(body.decode("utf-8").strip()), None

    def read(self, bodies: list[bytes], side: Side, content_types: list[str] | None = None) -> Table:
        """All payloads in one C-parser pass; if that fails, payload by payload to skip the bad ones."""
        texts, lines_per = [], []
        try:
            for b in bodies:
                t = b.decode("utf-8").strip()
                texts.append(t)
                lines_per.append(t.count("\n") + 1 if t else 0)
            rows = _parse_lines("\n".join(t for t in texts if t))
            if len(rows) != sum(lines_per):
                raise ValueError("blank lines inside a payload")
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
            return super().read(bodies, side, content_types)
        record = np.repeat(np.arange(len(bodies)), lines_per)
        return Table(rows, record, None, {"empty payload": [i for i, n in enumerate(lines_per) if n == 0]}
                     if 0 in lines_per else {})


def _parse_lines(text: str) -> pd.DataFrame:
    """Rows by pandas' C parser, a type per column (integers stay integers)."""
    if not text:
        raise ValueError("empty payload")
    return pd.read_csv(io.StringIO(text), header=None, skipinitialspace=True, skip_blank_lines=False)


_NUMBER_BYTES = b"0123456789+-.eE, \t\r\n"
_NEGATIVE_INT_ZERO = re.compile(rb"-0+(?![.\deE])")


def _plain_numbers(raw: bytes) -> np.ndarray | None:
    """Comma-separated plain decimal numbers parsed by orjson's C parser (6-8x faster than float() per token
    on a 256-value row; both round correctly, so the values are the same), or None when the text holds
    anything else (nan, inf, +1, .5, an empty value, a word...): the caller then parses token by token, with
    its error message. Only digits, signs, points, exponents, commas and blanks get here, so orjson can only
    answer a flat list of numbers or fail."""
    if raw.translate(None, _NUMBER_BYTES) or b"-0" in raw and _NEGATIVE_INT_ZERO.search(raw):
        return None  # (orjson reads the integer -0 as 0; float() as -0.0)
    try:
        values = orjson.loads(b"[" + raw + b"]")
    except orjson.JSONDecodeError:
        return None
    return np.array(values, dtype=np.float64)


def _numbers(tokens: list[str], width: int) -> np.ndarray:
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        where = next(i for i, t in enumerate(tokens) if not _is_number(t))
        raise FerryError(bad_request(
            f"CSV value {tokens[where][:40]!r} in row {where // width + 1}, column {where % width + 1} "
            "is not a number")) from None


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


# %-specs writing a value as _formatter does (float64 by repr, other floats in 9 digits, bools as 0/1)
_PERCENT = {"<f8": "%r", "f": "%.9g", "b": "%d", "i": "%d", "u": "%d"}
_ONE_ROW: dict[tuple, str] = {}  # (dtype, shape) of each output -> the %-format of its one response row, or ""
_ONE_ROW_MAX = 256  # signatures remembered (a model's outputs have few); past it, the general path


def _one_row_format(arrays: list[np.ndarray]) -> str:
    """The %-format of a response whose outputs hold one row of numbers each, "" for any other response."""
    if not arrays or any(a.ndim and a.shape[0] != 1 or not a.size for a in arrays):
        return ""
    specs = [_PERCENT.get(a.dtype.str) or _PERCENT.get(a.dtype.kind) for a in arrays]
    if not all(specs):
        return ""
    return ",".join(spec for a, spec in zip(arrays, specs) for _ in range(a.size)) + "\n"


def _formatter(a: np.ndarray):
    if a.dtype.kind == "f":
        return repr if a.dtype == np.float64 else FLOAT_FORMAT
    if a.dtype.kind == "b":
        return lambda v: "1" if v else "0"
    if a.dtype.kind in "iu":
        return str
    return lambda v: v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


CSV = CsvCodec()
