"""The online store interface: event-time compare-and-set writes, TTL-aware reads.

Rules every backend keeps (SageMaker Feature Store semantics):
- put: applied only when the new event time is strictly greater than the stored one (or the stored
  record has expired); otherwise the online record is left alone.
- update: merges the given features; an event time older than the stored one is a ConflictError;
  no event time keeps the stored one.
- delete: applied only with a strictly newer event time. Soft: features dropped, the event time is kept
  as a tombstone so older writes cannot resurrect the record. Hard: the row is removed; a hard delete
  that is not newer raises RecordError.
- get: a deleted or expired record (expires_at <= now) is never returned.

A backend is one module: its typed config (a `Strict` model with `type: Literal["<name>"]`), its store class
(`config_class`, `from_config`, the operations below, `unavailable_errors` = its client's "cannot reach the
server" exceptions, which every operation turns into the store-neutral StoreUnavailable), and one line in
`featurestore.online.BACKENDS`.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from core.schema import Strict
from featurestore.records import Record, as_text
from featurestore.spec import FeatureGroupSpec

KEEP = math.nan  # update(): keep the stored expiry


class StoreUnavailable(ConnectionError):
    """The online store cannot be reached or does not answer (any backend): retry later, the request was fine."""


_OPERATIONS = ("create_group", "drop_group", "put_many", "update", "delete", "get_many", "get_text", "get_matrix",
               "ping")


def _unavailable_as_neutral(fn):
    @functools.wraps(fn)
    def op(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except self.unavailable_errors as e:
            raise StoreUnavailable(f"{self.config.type} online store unavailable: {e}") from e

    return op


@dataclass(slots=True)
class StoredRecord:
    event_time: float
    expires_at: float | None
    values: dict[str, Any]


class OnlineStore(ABC):
    """Latest record per (group, record id)."""

    config_class: ClassVar[type[Strict]]
    unavailable_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    config: Any

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _OPERATIONS:
            if name in cls.__dict__:
                setattr(cls, name, _unavailable_as_neutral(cls.__dict__[name]))

    @classmethod
    @abstractmethod
    def from_config(cls, config: Any, data_dir: Path) -> "OnlineStore":
        """The store a config describes; relative paths live under the feature store's data_dir."""

    @abstractmethod
    def create_group(self, spec: FeatureGroupSpec) -> None:
        """Prepare storage for a group (idempotent)."""

    @abstractmethod
    def drop_group(self, spec: FeatureGroupSpec) -> None:
        """Remove every record of a group."""

    @abstractmethod
    def put_many(self, spec: FeatureGroupSpec, records: Sequence[Record], now: float) -> int:
        """Write records in order under the event-time rule; return how many were applied."""

    @abstractmethod
    def update(self, spec: FeatureGroupSpec, record: Record, expires_at: float | None, now: float) -> None:
        """Merge record.values into the stored record (record.event_time NaN = keep; expires_at KEEP = keep)."""

    @abstractmethod
    def delete(self, spec: FeatureGroupSpec, record_id: str, event_time: float, hard: bool, now: float) -> bool:
        """Delete under the event-time rule; True when applied online."""

    @abstractmethod
    def get_many(self, spec: FeatureGroupSpec, record_ids: Sequence[str], now: float,
                 names: Sequence[str] | None = None) -> list[StoredRecord | None]:
        """Live records in the order asked (None: missing, deleted or expired). `names` limits the features."""

    def get_text(self, spec: FeatureGroupSpec, record_ids: Sequence[str], now: float,
                 names: Sequence[str] | None = None) -> list[StoredRecord | None]:
        """As get_many, with values as SageMaker text (records.as_text): what GetRecord answers. A backend that
        stores text can skip the decode and re-encode."""
        def text(values: dict[str, Any]) -> dict[str, Any]:
            return {k: None if v is None else as_text(v) for k, v in values.items()}

        return [None if g is None else StoredRecord(g.event_time, g.expires_at, text(g.values))
                for g in self.get_many(spec, record_ids, now, names)]

    def get_matrix(self, spec: FeatureGroupSpec, record_ids: Sequence[str], names: Sequence[str],
                   now: float) -> tuple[np.ndarray, np.ndarray]:
        """Numeric features of live records as float64 (n, len(names)) (NaN where absent) and a found mask."""
        got = self.get_many(spec, record_ids, now, names)
        found = np.fromiter((g is not None for g in got), dtype=bool, count=len(got))
        rows = [[None] * len(names) if g is None else [g.values.get(n) for n in names] for g in got]
        return np.array(rows, dtype=np.float64).reshape(len(got), len(names)), found

    @abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable when the backend cannot be reached."""

    def close(self) -> None:
        """Release connections."""


def is_live(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now
