"""Point-in-time training sets on DuckDB: for each entity row, the latest feature values at or before its timestamp.

Rules: a feature row counts when its event time <= the entity timestamp (never after: no leakage); among rows
with the same record id and event time the earliest written wins, by the log's strict write order `write_seq`
(as in the online store, where an equal event time is not newer); a delete marker as the latest row yields nulls;
with `ttl` a row older than timestamp - ttl yields nulls. Integral features come back as pandas' nullable Int64
(exact over the whole signed 64-bit range, <NA> where there is no value).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from featurestore.offline import WRITE_SEQ, OfflineStore
from featurestore.spec import FeatureGroupSpec, FeatureType


def _epoch_seconds(s: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64)
    if pd.api.types.is_datetime64_any_dtype(s):
        ts = pd.to_datetime(s, utc=True)
    else:  # ISO-8601 in any of its spellings, row by row if need be (pandas would guess one format from row 1)
        try:
            ts = pd.to_datetime(s, utc=True, format="ISO8601")
        except (ValueError, TypeError):
            try:
                ts = pd.to_datetime(s, utc=True, format="mixed")
            except (ValueError, TypeError, OverflowError) as e:
                raise ValueError(f"{name}: entity timestamps must be numbers (unix seconds) or dates: {e}") from None
    if ts.isna().any():
        raise ValueError(f"{name}: entity timestamps must not be null")
    return ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype(np.int64).to_numpy() / 1e6


def point_in_time_join(offline: OfflineStore, spec: FeatureGroupSpec, entities: pd.DataFrame,
                       features: Sequence[str] | None = None, entity_column: str | None = None,
                       timestamp_column: str = "event_timestamp", ttl: timedelta | float | None = None,
                       threads: int | None = None) -> pd.DataFrame:
    """Entity rows (id + timestamp) joined with the group's features as of each timestamp, in input order."""
    key = entity_column or spec.record_identifier
    for col in (key, timestamp_column):
        if col not in entities.columns:
            raise ValueError(f"entities: missing column {col!r}")
    names = list(features) if features is not None else [
        f for f in spec.feature_names if f not in (spec.record_identifier, spec.event_time)]
    unknown = [n for n in names if n not in spec.feature_names]
    if unknown:
        raise ValueError(f"features: unknown features {unknown} in group {spec.name!r}")
    ttl_s = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    rid_type = spec.feature(spec.record_identifier).type
    ents = pd.DataFrame({
        "__row": np.arange(len(entities), dtype=np.int64),
        "__id": entities[key].astype("int64" if rid_type is FeatureType.INTEGRAL else "string").to_numpy(),
        "__ts": _epoch_seconds(entities[timestamp_column], timestamp_column),
    })
    files = [str(f) for f in offline.files(spec)]
    et_col = f'"{spec.event_time}"'
    et_expr = (f"epoch_us(CAST({et_col} AS TIMESTAMPTZ)) / 1e6"
               if spec.feature(spec.event_time).type is FeatureType.STRING else f"CAST({et_col} AS DOUBLE)")
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    try:
        con.register("ents", ents)
        qnames = ", ".join(f'"{n}"' for n in names)
        if files:
            listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE TEMP VIEW log AS SELECT * FROM read_parquet([{listed}], union_by_name = true, "
                        "hive_partitioning = false)")
        else:
            cols = ", ".join(f'NULL::{_duck_type(spec, n)} AS "{n}"' for n in names)
            con.execute(f"CREATE TEMP VIEW log AS SELECT NULL::{_duck_type(spec, spec.record_identifier)} AS "
                        f'"{spec.record_identifier}", NULL::DOUBLE AS {et_col}, {cols}, NULL::TIMESTAMPTZ AS '
                        "api_invocation_time, NULL::TIMESTAMPTZ AS write_time, NULL::BOOLEAN AS is_deleted, "
                        f"NULL::BIGINT AS {WRITE_SEQ} LIMIT 0")
        logged = {row[0] for row in con.execute("DESCRIBE log").fetchall()}
        # logs written before write_seq existed: their rows order by write time, before any sequenced row
        order = (f"{WRITE_SEQ} NULLS FIRST, write_time, api_invocation_time" if WRITE_SEQ in logged
                 else "write_time, api_invocation_time")
        fresh = "TRUE" if ttl_s is None else f"d.__fts >= e.__ts - {float(ttl_s)!r}"
        select = ", ".join(f'CASE WHEN d.is_deleted OR NOT ({fresh}) THEN NULL ELSE d."{n}" END AS "{n}"'
                           for n in names)
        sql = f"""
        WITH d AS (
          SELECT "{spec.record_identifier}" AS __fid, {et_expr} AS __fts, is_deleted, {qnames}
          FROM log
          QUALIFY row_number() OVER (PARTITION BY "{spec.record_identifier}", {et_col}
                                     ORDER BY {order}) = 1
        )
        SELECT e.__row, d.__fts AS __feature_ts{', ' + select if select else ''}
        FROM ents e ASOF LEFT JOIN d ON e.__id = d.__fid AND e.__ts >= d.__fts
        ORDER BY e.__row
        """
        got = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    out = entities.reset_index(drop=True).copy()
    for n in names:
        col = got.column(n)
        out[n] = (col.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get) if pa.types.is_integer(col.type)
                  else col.to_pandas())
    return out


def _duck_type(spec: FeatureGroupSpec, name: str) -> str:
    fd = spec.feature(name)
    t = {FeatureType.INTEGRAL: "BIGINT", FeatureType.FRACTIONAL: "DOUBLE", FeatureType.STRING: "VARCHAR"}[fd.type]
    return t if fd.collection is None else t + "[]"

