"""statistics.json in Model Monitor's format, computed on whole columns."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitor import sketch as sk
from monitor import types as ty

log = logging.getLogger(__name__)
MAX_CATEGORICAL_BUCKETS = 1000


@dataclass
class ColumnProfile:
    """What the checks need of one column, beside its statistics.json entry."""

    name: str
    inferred_type: str
    codes: np.ndarray
    sorted_values: np.ndarray | None = None  # numeric columns
    counts: pd.Series | None = None  # string columns: value -> count
    entry: dict = field(default_factory=dict)


def profile_column(name: str, col: pd.Series) -> ColumnProfile:
    """Classify, infer the type and summarise one column."""
    codes = ty.classify(col)
    itype = ty.infer_type(codes)
    n_missing = int((codes == ty.NULL).sum())
    common = {"num_present": int(len(codes) - n_missing), "num_missing": n_missing}
    prof = ColumnProfile(name, itype, codes)
    entry: dict = {"name": name, "inferred_type": itype}
    if itype in ("Integral", "Fractional"):
        v = np.sort(ty.numeric_values(col))
        prof.sorted_values = v
        _, sketch_json = sk.build(v)
        entry["numerical_statistics"] = {
            "common": common,
            "mean": float(v.mean()), "sum": float(v.sum()), "std_dev": float(v.std()),
            "min": float(v[0]), "max": float(v[-1]),
            "distribution": {"kll": {"buckets": sk.buckets(v), "sketch": sketch_json}},
        }
    elif itype == "String":
        counts = ty.string_counts(col)
        prof.counts = counts
        top = counts.iloc[:MAX_CATEGORICAL_BUCKETS]
        if len(counts) > len(top):
            log.info("column %s: %d distinct values, keeping the top %d as buckets", name, len(counts), len(top))
        entry["string_statistics"] = {
            "common": common, "distinct_count": float(len(counts)),
            "distribution": {"categorical": {"buckets": [
                {"value": str(k), "count": float(c)} for k, c in zip(top.index, top.to_numpy())]}},
        }
    else:
        entry["string_statistics"] = {"common": common, "distinct_count": 0.0,
                                      "distribution": {"categorical": {"buckets": []}}}
    prof.entry = entry
    return prof


def profile(df: pd.DataFrame) -> dict[str, ColumnProfile]:
    """Profiles of every column, keyed by column name."""
    if df.columns.duplicated().any():
        dup = sorted(set(df.columns[df.columns.duplicated()]))
        raise ValueError(f"duplicate column names: {dup}")
    return {str(c): profile_column(str(c), df[c]) for c in df.columns}


def statistics_json(df: pd.DataFrame, profiles: dict[str, ColumnProfile] | None = None) -> dict:
    """The statistics.json document for a DataFrame."""
    profiles = profiles if profiles is not None else profile(df)
    return {"version": 0, "dataset": {"item_count": int(len(df))},
            "features": [p.entry for p in profiles.values()]}


def baseline_sketch(feature: dict) -> sk.Sketch | None:
    """The KLL sketch of a numerical feature entry in statistics.json."""
    ns = feature.get("numerical_statistics")
    if not ns:
        return None
    return sk.from_json(ns["distribution"]["kll"]["sketch"])


def baseline_counts(feature: dict) -> pd.Series | None:
    """Category -> count of a string feature entry in statistics.json."""
    ss = feature.get("string_statistics")
    if not ss:
        return None
    b = ss["distribution"]["categorical"]["buckets"]
    return pd.Series([x["count"] for x in b], index=[str(x["value"]) for x in b], dtype=np.float64)
