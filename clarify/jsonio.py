"""JSON in Clarify's conventions: +-inf written as the strings "Infinity" / "-Infinity" (smclarify's
``inf_as_str``), NaN as "NaN", numpy scalars as plain numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def json_value(v: Any) -> Any:
    """A metric value as it appears in a report: float, "Infinity", "-Infinity", "NaN" or None."""
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def parse_value(v: Any) -> float | None:
    """A report value back as a float (the inverse of ``json_value``); None stays None."""
    if v is None:
        return None
    if isinstance(v, str):
        special = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
        return special[v] if v in special else float(v)
    return float(v)


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return json_value(o) if isinstance(o, np.floating) else o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any, indent: int | None = 2) -> str:
    """Serialise a report; refuses bare NaN/inf floats (they should have gone through json_value)."""
    return json.dumps(obj, indent=indent, default=_default, allow_nan=False)


def write(obj: Any, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(dumps(obj) + "\n")
    return p
