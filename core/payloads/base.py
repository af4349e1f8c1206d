"""The codec interface, and the table that captured payloads become."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

Side = Literal["input", "output"]
INPUT: Side = "input"
OUTPUT: Side = "output"
Tensors = np.ndarray | dict[str, np.ndarray]  # a row matrix, or named tensors (first axis = rows)


def media_type(header: str | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv`."""
    return (header or "").split(";", 1)[0].strip().lower()


@dataclass
class Table:
    """Rows read from captured payloads: `rows` (2-D; a DataFrame where the format infers a type per
    column, as CSV does), `record` (which payload each row came from), `columns` when the payloads name
    them, and the payloads that could not be read, by reason."""

    rows: np.ndarray | pd.DataFrame
    record: np.ndarray
    columns: list[str] | None = None
    skipped: dict[str, list[int]] = field(default_factory=dict)


def tensors_rows(named: dict[str, np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Named tensors side by side, one row per first-axis entry ([n, k] gives k columns `name_0..`)."""
    blocks, names = [], []
    for name, arr in named.items():
        a = np.asarray(arr)
        a = a.reshape(1, 1) if a.ndim == 0 else a.reshape(a.shape[0], -1)
        blocks.append(a)
        names += [name] if a.shape[1] == 1 else [f"{name}_{i}" for i in range(a.shape[1])]
    if len(blocks) == 1:
        return blocks[0], names
    if len({b.shape[0] for b in blocks}) != 1:
        raise ValueError(f"tensors have different row counts: {[b.shape[0] for b in blocks]}")
    kinds = {b.dtype.kind for b in blocks}
    return np.hstack([b.astype(object) for b in blocks] if kinds & set("OUSb") else blocks), names


class CaptureCodec(ABC):
    """One content type as captured: read captured bodies back into rows (V2 binary is only ever read)."""

    media_type: str = ""

    @abstractmethod
    def read_one(self, body: bytes, side: Side, content_type: str | None = None) -> tuple[np.ndarray, list[str] | None]:
        """One captured payload's rows (and column names if it has them); raises when unreadable."""

    def read(self, bodies: list[bytes], side: Side, content_types: list[str] | None = None) -> Table:
        """Captured payloads of this type as one Table; what cannot be read is skipped with a reason."""
        parts, record, skipped = [], [], {}
        columns: list[str] | None = None
        for i, body in enumerate(bodies):
            try:
                rows, names = self.read_one(body, side, content_types[i] if content_types else None)
            except Exception as err:  # noqa: BLE001 - a user's payload: skipped and counted, never raised
                skipped.setdefault(_reason(err), []).append(i)
                continue
            if parts and rows.shape[1] != parts[0].shape[1]:
                skipped.setdefault(f"{rows.shape[1]} columns where the first payload has {parts[0].shape[1]}",
                                   []).append(i)
                continue
            columns = names if not parts or names == columns else None  # names only where all agree
            parts.append(rows)
            record.append(np.full(len(rows), i))
        if not parts:
            return Table(np.empty((0, 0)), np.empty(0, dtype=int), None, skipped)
        if len(parts) > 1:
            rows = (pd.concat(parts, ignore_index=True) if isinstance(parts[0], pd.DataFrame)
                    else np.concatenate(parts))
        else:
            rows = parts[0]
        return Table(rows, np.concatenate(record), columns, skipped)


class Codec(CaptureCodec):
    """A content type the SageMaker routes speak: decode a request, encode a response, and read its capture."""

    @abstractmethod
    def decode(self, body: bytes) -> Tensors:
        """A request body as a row matrix or named tensors; FerryError (4xx) when malformed."""

    @abstractmethod
    def encode(self, outputs: dict[str, np.ndarray]) -> bytes:
        """Model outputs as a response body of this type."""



def _reason(err: Exception) -> str:
    """A short, stable reason for a skipped payload (the first line of the error, bounded)."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:120]
