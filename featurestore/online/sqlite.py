"""SQLite online store (embedded default): one table per group, WAL mode, upsert guarded by event time."""

from __future__ import annotations

import math
import sqlite3
import threading
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import orjson
from pydantic import Field

from core.schema import Strict
from featurestore.online.base import OnlineStore, StoredRecord, is_live
from featurestore.records import ConflictError, Record, RecordError
from featurestore.spec import FeatureGroupSpec

_CHUNK = 500  # ids per SELECT ... IN (...)


def _table(spec: FeatureGroupSpec) -> str:
    return '"fs_' + spec.name + '"'  # names are [A-Za-z0-9_-] (validated), safe to quote


class SQLiteConfig(Strict):
    """The embedded default: one SQLite file."""

    type: Literal["sqlite"] = "sqlite"
    path: str = Field("online.db", description="the database file (relative: under the feature store's data_dir)")


class SQLiteOnlineStore(OnlineStore):
    """A file shared by threads through one connection per thread."""

    config_class = SQLiteConfig
    unavailable_errors = (sqlite3.OperationalError,)  # locked past busy_timeout, cannot open the file

    def __init__(self, path: str | Path):
        self.config = SQLiteConfig(path=str(path))
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._conn().execute("PRAGMA journal_mode=WAL")

    def _conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA synchronous=NORMAL")
            c.execute("PRAGMA busy_timeout=30000")
            self._local.conn = c
            with self._lock:
                self._conns.append(c)
        return c

    @classmethod
    def from_config(cls, config: SQLiteConfig, data_dir: Path) -> "SQLiteOnlineStore":
        return cls(Path(data_dir) / config.path)

    def create_group(self, spec: FeatureGroupSpec) -> None:
        self._conn().execute(
            f"CREATE TABLE IF NOT EXISTS {_table(spec)} (record_id TEXT PRIMARY KEY, event_time REAL NOT NULL, "
            "expires_at REAL, deleted INTEGER NOT NULL DEFAULT 0, data TEXT) WITHOUT ROWID")

    def drop_group(self, spec: FeatureGroupSpec) -> None:
        self._conn().execute(f"DROP TABLE IF EXISTS {_table(spec)}")

    def put_many(self, spec: FeatureGroupSpec, records: Sequence[Record], now: float) -> int:
        t = _table(spec)
        c = self._conn()
        before = c.total_changes
        rows = [(r.record_id, r.event_time, r.expires_at, orjson.dumps(r.values).decode())
                for r in records]
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany(
                f"INSERT INTO {t} (record_id, event_time, expires_at, deleted, data) VALUES (?, ?, ?, 0, ?) "
                "ON CONFLICT(record_id) DO UPDATE SET event_time = excluded.event_time, "
                "expires_at = excluded.expires_at, deleted = 0, data = excluded.data "
                f"WHERE excluded.event_time > {t}.event_time "
                f"OR ({t}.expires_at IS NOT NULL AND {t}.expires_at <= {float(now)!r})", rows)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return c.total_changes - before

    def update(self, spec: FeatureGroupSpec, record: Record, expires_at: float | None, now: float) -> None:
        t = _table(spec)
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute(f"SELECT event_time, expires_at, deleted, data FROM {t} WHERE record_id = ?",
                            (record.record_id,)).fetchone()
            new_et = record.event_time
            if row is not None and not is_live(row[1], now):
                row = None  # expired: as if absent
            if row is None or row[2]:
                if row is not None and not math.isnan(new_et) and new_et <= row[0]:
                    raise ConflictError(f"EventTime is not newer than the deleted record's ({row[0]})")
                if math.isnan(new_et):
                    raise RecordError(spec.event_time, "EventTime is required to update a record that does not exist")
                values = {k: v for k, v in record.values.items() if v is not None}
                exp = None if expires_at is not None and math.isnan(expires_at) else expires_at
            else:
                if not math.isnan(new_et) and new_et < row[0]:
                    raise ConflictError(f"EventTime is older than the stored record's ({row[0]})")
                values = orjson.loads(row[3])
                for k, v in record.values.items():
                    if v is None:
                        values.pop(k, None)
                    else:
                        values[k] = v
                if math.isnan(new_et):
                    new_et = row[0]
                exp = row[1] if expires_at is not None and math.isnan(expires_at) else expires_at
            c.execute(f"INSERT OR REPLACE INTO {t} VALUES (?, ?, ?, 0, ?)",
                      (record.record_id, new_et, exp, orjson.dumps(values).decode()))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def delete(self, spec: FeatureGroupSpec, record_id: str, event_time: float, hard: bool, now: float) -> bool:
        t = _table(spec)
        c = self._conn()
        c.execute("BEGIN IMMEDIATE")
        try:
            row = c.execute(f"SELECT event_time, expires_at FROM {t} WHERE record_id = ?", (record_id,)).fetchone()
            newer = row is None or not is_live(row[1], now) or event_time > row[0]
            if not newer:
                c.execute("COMMIT")
                if hard:
                    raise RecordError("EventTime", f"HardDelete needs an EventTime newer than the stored {row[0]}")
                return False
            if hard:
                c.execute(f"DELETE FROM {t} WHERE record_id = ?", (record_id,))
            else:
                c.execute(f"INSERT OR REPLACE INTO {t} VALUES (?, ?, NULL, 1, NULL)", (record_id, event_time))
            c.execute("COMMIT")
            return True
        except RecordError:
            raise
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def get_many(self, spec: FeatureGroupSpec, record_ids: Sequence[str], now: float,
                 names: Sequence[str] | None = None) -> list[StoredRecord | None]:
        t = _table(spec)
        c = self._conn()
        found: dict[str, StoredRecord] = {}
        ids = list(dict.fromkeys(record_ids))
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            q = (f"SELECT record_id, event_time, expires_at, data FROM {t} "
                 f"WHERE deleted = 0 AND record_id IN ({','.join('?' * len(chunk))})")
            for rid, et, exp, data in c.execute(q, chunk):
                if exp is None or exp > now:
                    values = orjson.loads(data)
                    if names is not None:
                        values = {n: values.get(n) for n in names}
                    found[rid] = StoredRecord(et, exp, values)
        return [found.get(r) for r in record_ids]

    def get_matrix(self, spec: FeatureGroupSpec, record_ids: Sequence[str], names: Sequence[str],
                   now: float) -> tuple[np.ndarray, np.ndarray]:
        t = _table(spec)
        c = self._conn()
        cols = ", ".join(f"json_extract(data, '$.\"{n}\"')" for n in names)
        pos = {rid: i for i, rid in enumerate(record_ids)}
        out = np.full((len(record_ids), len(names)), np.nan)
        found = np.zeros(len(record_ids), dtype=bool)
        ids = list(pos)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            q = (f"SELECT record_id, {cols} FROM {t} WHERE deleted = 0 AND (expires_at IS NULL OR expires_at > ?) "
                 f"AND record_id IN ({','.join('?' * len(chunk))})")
            rows = c.execute(q, [now, *chunk]).fetchall()
            if rows:
                idx = np.fromiter((pos[r[0]] for r in rows), dtype=np.int64, count=len(rows))
                out[idx] = np.array([r[1:] for r in rows], dtype=np.float64)
                found[idx] = True
        if len(pos) != len(record_ids):  # repeated ids: copy from the first occurrence
            first = np.fromiter((pos[r] for r in record_ids), dtype=np.int64, count=len(record_ids))
            out, found = out[first], found[first]
        return out, found

    def ping(self) -> None:
        self._conn().execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            for c in self._conns:
                c.close()
            self._conns.clear()
        self._local = threading.local()
