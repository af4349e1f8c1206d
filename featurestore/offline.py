"""Offline store: an append-only Parquet log per group, partitioned by event time (SageMaker layout).

`<root>/<group>/data/year=YYYY/month=MM/day=DD/hour=HH/<latest event time>_<tag>.parquet`, every row carrying
`write_time`, `api_invocation_time`, `is_deleted` (True on delete markers, features null) and `write_seq`: the strict
write order (int64, nanoseconds since the epoch at the append plus the row's index in it, strictly increasing in a
writing process). It is the one tie-break among rows of the same record id and event time, so the training view
agrees with the online store, where the first write of an event time wins.
Kafka ingestion tags files `kafka-<topic>-p<partition>-o<first>-<last>` so that files written after the last
committed offset can be removed and rewritten on restart (exact after a crash).
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featurestore.records import Record
from featurestore.spec import FeatureDefinition, FeatureGroupSpec, FeatureType

log = logging.getLogger(__name__)

_SCALAR_ARROW = {FeatureType.INTEGRAL: pa.int64(), FeatureType.FRACTIONAL: pa.float64(),
                 FeatureType.STRING: pa.string()}
_TS = pa.timestamp("us", tz="UTC")
WRITE_SEQ = "write_seq"


class _WriteOrder:
    """Hands out strictly increasing int64 ranges: time.time_ns() at the call, never below the last range's end."""

    def __init__(self) -> None:
        self._next = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> np.ndarray:
        with self._lock:
            start = max(time.time_ns(), self._next)
            self._next = start + n
        return np.arange(start, start + n, dtype=np.int64)


_write_order = _WriteOrder()


def arrow_type(fd: FeatureDefinition) -> pa.DataType:
    t = _SCALAR_ARROW[fd.type]
    return t if fd.collection is None else pa.list_(t)


def arrow_schema(spec: FeatureGroupSpec) -> pa.Schema:
    return pa.schema([pa.field(f.name, arrow_type(f)) for f in spec.features]
                     + [pa.field("write_time", _TS), pa.field("api_invocation_time", _TS),
                        pa.field("is_deleted", pa.bool_()), pa.field(WRITE_SEQ, pa.int64())])


class OfflineStore:
    """Parquet log rooted at `root` (one folder per group)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def group_dir(self, spec: FeatureGroupSpec) -> Path:
        return self.root / spec.name / "data"

    def files(self, spec: FeatureGroupSpec) -> list[Path]:
        d = self.group_dir(spec)
        return sorted(d.glob("year=*/month=*/day=*/hour=*/*.parquet")) if d.is_dir() else []

    def append(self, spec: FeatureGroupSpec, records: Sequence[Record], deleted: Sequence[bool] | None = None,
               api_invocation_time: float | None = None, tag: str | None = None) -> int:
        """Write records (delete markers where `deleted`) into hour partitions; return rows written."""
        if not records:
            return 0
        now = time.time()
        api_t = now if api_invocation_time is None else api_invocation_time
        n = len(records)
        et = np.fromiter((r.event_time for r in records), dtype=np.float64, count=n)
        feats = pa.Table.from_pylist([r.values for r in records], schema=pa.schema(
            [pa.field(f.name, arrow_type(f)) for f in spec.features]))
        cols: dict[str, pa.Array] = {name: feats.column(name) for name in feats.column_names}
        cols["write_time"] = pa.array(np.full(n, int(now * 1e6), dtype=np.int64), type=pa.int64()).cast(_TS)
        cols["api_invocation_time"] = pa.array(np.full(n, int(api_t * 1e6), dtype=np.int64)).cast(_TS)
        cols["is_deleted"] = pa.array(np.zeros(n, bool) if deleted is None else np.asarray(deleted, bool))
        cols[WRITE_SEQ] = pa.array(_write_order.take(n))
        table = pa.Table.from_pydict(cols, schema=arrow_schema(spec))
        hours = np.floor(et / 3600.0).astype(np.int64)
        order = np.argsort(hours, kind="stable")
        uniq, starts = np.unique(hours[order], return_index=True)
        bounds = list(starts[1:]) + [n]
        suffix = tag or secrets.token_hex(8)
        base = self.group_dir(spec)
        for h, s, e in zip(uniq, starts, bounds):
            idx = order[s:e]
            dt = datetime.fromtimestamp(int(h) * 3600, timezone.utc)
            d = base / f"year={dt.year:04d}/month={dt.month:02d}/day={dt.day:02d}/hour={dt.hour:02d}"
            d.mkdir(parents=True, exist_ok=True)
            latest = datetime.fromtimestamp(float(et[idx].max()), timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            final = d / f"{latest}_{suffix}.parquet"
            tmp = d / f".{final.name}.tmp"
            pq.write_table(table.take(pa.array(idx)), tmp, compression="snappy")
            tmp.replace(final)  # readers never see a half-written file
        return n

    def remove_uncommitted(self, spec: FeatureGroupSpec, topic: str, committed: dict[int, int]) -> int:
        """Delete Kafka-tagged files whose first offset is at or past the committed offset of their partition."""
        pat = re.compile(r"_kafka-" + re.escape(topic) + r"-p(\d+)-o(\d+)-(\d+)\.parquet$")
        removed = 0
        for f in self.files(spec):
            m = pat.search(f.name)
            if m and int(m.group(1)) in committed and int(m.group(2)) >= committed[int(m.group(1))]:
                f.unlink()
                removed += 1
        if removed:
            log.info("offline %s: removed %d files written after the last commit", spec.name, removed)
        return removed

    def read(self, spec: FeatureGroupSpec, columns: Iterable[str] | None = None) -> pa.Table:
        """The whole log of a group as one Arrow table (empty with the schema when nothing was written)."""
        files = self.files(spec)
        schema = arrow_schema(spec)
        if not files:
            return schema.empty_table()
        return pq.ParquetDataset([str(f) for f in files], schema=schema, partitioning=None).read(
            columns=list(columns) if columns else None)


def kafka_tag(topic: str, partition: int, first: int, last: int) -> str:
    return f"kafka-{topic}-p{partition}-o{first}-{last}"
