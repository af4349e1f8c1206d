"""JSON in Model Monitor's dialect: NaN as "NaN", infinities as "Infinity"/"-Infinity"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from clarify.jsonio import json_value, parse_value


def clean(obj: Any) -> Any:
    """Return obj with numpy scalars made plain and non-finite floats made strings."""
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


def as_float(v: Any) -> float:
    """Read a number written by clean() (or a plain JSON number) back as float."""
    return parse_value(v)


def write_json(path: str | Path, obj: Any) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(clean(obj), indent=2))
    return p


def read_json(path: str | Path) -> Any:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON: {err}") from None
