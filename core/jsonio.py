"""JSON files in the dialect of SageMaker's reports (Model Monitor's and Clarify's): NaN as "NaN", infinities as
"Infinity" / "-Infinity" (smclarify's ``inf_as_str``), numpy scalars and arrays as plain JSON.

The one writer and reader of Ferry's report files: ``write_json(path, obj)``, ``read_json(path)``; and the one
atomic file write under it, ``write_text_atomic``, which the state files (the feature-group registry, the control
plane's traffic state) use too.
"""

from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

_SPECIAL = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def json_value(v: Any) -> Any:
    """A number as it appears in a report: float, "Infinity", "-Infinity", "NaN" or None."""
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
        return _SPECIAL[v] if v in _SPECIAL else float(v)
    return float(v)


def clean(obj: Any) -> Any:
    """obj with numpy scalars and arrays made plain and non-finite floats made strings."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return json_value(obj)
    return obj


def dumps(obj: Any, indent: int | None = 2) -> str:
    return json.dumps(clean(obj), indent=indent, allow_nan=False)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write text to path (parent folders made), atomically: beside it under a name of this process and thread,
    then renamed, so a reader never sees half a file and two writers never share a temporary file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, p)
    return p


def write_json(path: str | Path, obj: Any) -> Path:
    """Write obj to path (parent folders made), in the reports' dialect, atomically (write_text_atomic): a reader
    (the executions route, a concurrent listing) never sees half a file."""
    return write_text_atomic(path, dumps(obj) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON file; a missing file or bad JSON raises an error that names the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON: {err}") from None
