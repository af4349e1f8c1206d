"""Per-value type classification and the inferred column type (deequ's DataType rules).

Values are classified as null, Integral, Fractional or String on whole columns at once; a column is
String if any value is a string, else Fractional if any value is fractional, else Integral, and
Unknown when it holds no value at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NULL, INTEGRAL, FRACTIONAL, STRING = 0, 1, 2, 3
TYPE_NAMES = {INTEGRAL: "Integral", FRACTIONAL: "Fractional", STRING: "String"}
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
    s = col.astype("string").str.strip()
    isnull = s.isna() | (s == "")
    out = np.full(len(s), STRING, dtype=np.int8)
    out[s.str.fullmatch(_FRAC_RE).fillna(False).to_numpy(dtype=bool)] = FRACTIONAL
    out[s.str.fullmatch(_INT_RE).fillna(False).to_numpy(dtype=bool)] = INTEGRAL
    out[isnull.to_numpy(dtype=bool)] = NULL
    return out


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


def string_values(col: pd.Series) -> pd.Series:
    """The column's present values as strings (nulls and blanks dropped)."""
    s = col.astype("string").str.strip()
    return s[s.notna() & (s != "")]
