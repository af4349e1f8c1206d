"""Per-value type classification and the inferred column type (deequ's DataType rules).

Values are classified as null, Integral, Fractional or String on whole columns at once; a column is
String if any value is a string, else Fractional if any value is fractional, else Integral, and
Unknown when it holds no value at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NULL, INTEGRAL, FRACTIONAL, STRING = 0, 1, 2, 3
_INT_RE = r"[+-]?\d+"
_FRAC_RE = r"[+-]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][+-]?\d+)"


def classify(col: pd.Series) -> np.ndarray:
    """Return an int8 code per value: NULL, INTEGRAL, FRACTIONAL or STRING."""
    if pd.api.types.is_bool_dtype(col):
        return np.where(col.isna().to_numpy(), NULL, STRING).astype(np.int8)
    if pd.api.types.is_integer_dtype(col):
        return np.where(col.isna().to_numpy(), NULL, INTEGRAL).astype(np.int8)
    if pd.api.types.is_float_dtype(col):
        v = col.to_numpy(dtype=np.float64, na_value=np.nan)
        out = np.full(len(v), FRACTIONAL, dtype=np.int8)
        finite = np.isfinite(v)
        out[finite & (v == np.floor(np.where(finite, v, 0)))] = INTEGRAL
        out[np.isnan(v)] = NULL
        return out
    # strings: classify each distinct value once
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    u = pd.Series(uniques, dtype=object).astype("string").str.strip()
    kinds = np.full(len(u), STRING, dtype=np.int8)
    kinds[u.str.fullmatch(_FRAC_RE).fillna(False).to_numpy(dtype=bool)] = FRACTIONAL
    kinds[u.str.fullmatch(_INT_RE).fillna(False).to_numpy(dtype=bool)] = INTEGRAL
    kinds[(u.isna() | (u == "")).to_numpy(dtype=bool)] = NULL
    return np.where(codes < 0, NULL, kinds[np.maximum(codes, 0)]).astype(np.int8)


def infer_type(codes: np.ndarray) -> str:
    """Inferred column type from classify() codes."""
    counts = np.bincount(codes, minlength=4)
    if counts[STRING]:
        return "String"
    if counts[FRACTIONAL]:
        return "Fractional"
    if counts[INTEGRAL]:
        return "Integral"
    return "Unknown"


def type_match_fraction(codes: np.ndarray, expected: str) -> float:
    """Fraction of present values that fit the expected type (Integral fits Fractional; all fit String)."""
    present = codes != NULL
    n = int(present.sum())
    if n == 0 or expected in ("String", "Unknown"):
        return 1.0
    ok = codes == INTEGRAL if expected == "Integral" else (codes == INTEGRAL) | (codes == FRACTIONAL)
    return float(ok.sum()) / n


def numeric_values(col: pd.Series) -> np.ndarray:
    """The column's present numeric values as float64 (non-numeric values dropped)."""
    if pd.api.types.is_bool_dtype(col):
        v = col.astype("float64").to_numpy(na_value=np.nan)
    elif pd.api.types.is_numeric_dtype(col):
        v = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        v = pd.to_numeric(col.astype("string").str.strip(), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return v[~np.isnan(v)]


def string_counts(col: pd.Series) -> pd.Series:
    """Count of each present value as a string (nulls and blanks dropped), most frequent first."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    keys = pd.Series(uniques, dtype=object).astype("string").str.strip()
    out = pd.Series(counts, index=pd.Index(keys.to_numpy(dtype=object)), dtype=np.int64)
    out = out[keys.notna().to_numpy() & (keys != "").fillna(False).to_numpy(dtype=bool)]
    out = out.groupby(level=0, sort=False).sum()
    return out.sort_values(ascending=False, kind="stable")
