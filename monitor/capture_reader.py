"""Read SageMaker capture JSONL (a file or a folder of them) into a DataFrame for the monitors.

CSV payloads are split into columns by pandas' C parser (one row per payload line); JSON payloads
may be a row, a list of rows, {"instances": [...]}, {"features": [...]}, KServe V2 {"inputs": [...]}
or {"predictions"|"outputs": [...]}. Input columns are named by ``input_columns`` (else _c0, _c1, ...),
output columns by ``output_columns`` (else prediction, or prediction_0, prediction_1, ...).
Each row keeps its record's eventId, inferenceId, inferenceTime and variant.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
METADATA_COLUMNS = ("eventId", "inferenceId", "inferenceTime", "variant")


def iter_records(path: Path, start: datetime | None = None, end: datetime | None = None) -> list[dict]:
    """Capture records of a file or folder, in file-name order, once per eventId, inside [start, end) when given."""
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    if path.is_dir() and (start is not None or end is not None):
        files = [f for f in files if _hour_may_overlap(f, start, end)]
    records = []
    for f in files:
        text = f.read_text()
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                if i == len(lines) - 1 and not text.endswith("\n"):
                    log.info("%s: last line still being written, left for the next read", f)
                    continue
                raise ValueError(f"{f}:{i + 1}: not a JSON capture record: {err}") from None
    ids = pd.Series([(r.get("eventMetadata") or {}).get("eventId") for r in records], dtype=object)
    dup = (ids.duplicated() & ids.notna()).to_numpy()
    if dup.any():  # at-least-once sinks may repeat a record; keep its first copy
        records = [r for r, d in zip(records, dup) if not d]
    if start is None and end is None:
        return records
    times = pd.to_datetime([r.get("eventMetadata", {}).get("inferenceTime") for r in records], utc=True,
                           format="ISO8601")
    keep = np.ones(len(records), dtype=bool)
    if start is not None:
        keep &= times >= _utc(start)
    if end is not None:
        keep &= times < _utc(end)
    return [r for r, k in zip(records, keep) if k]


def _hour_may_overlap(f: Path, start: datetime | None, end: datetime | None) -> bool:
    """False only for a file in a yyyy/mm/dd/hh folder whose hour lies outside [start, end)."""
    try:
        y, mo, d, h = (int(x) for x in f.parent.parts[-4:])
        hour = pd.Timestamp(year=y, month=mo, day=d, hour=h, tz="UTC")
    except (ValueError, TypeError):
        return True
    if start is not None and hour + pd.Timedelta(hours=1) <= _utc(start):
        return False
    return not (end is not None and hour >= _utc(end))


def _utc(t: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _payload_text(part: dict) -> str | None:
    data = part.get("data")
    if data is None:
        return None
    if part.get("encoding") == "BASE64":
        return base64.b64decode(data).decode("utf-8", errors="replace")
    return data


def _json_rows(obj: Any, output: bool) -> list:
    """Rows of a JSON payload; a flat list is one row of inputs but one output per row."""
    if isinstance(obj, dict):
        for key in ("instances", "predictions"):
            if key in obj:
                return _json_rows(obj[key], output)
        for key in ("inputs", "outputs"):
            if key in obj and isinstance(obj[key], list) and obj[key] and isinstance(obj[key][0], dict):
                t = obj[key][0]
                arr = np.asarray(t.get("data", []))
                shape = t.get("shape") or [arr.size]
                if len(shape) >= 2:
                    return arr.reshape(shape[0], -1).tolist()
                return (arr.reshape(-1, 1) if output else arr.reshape(1, -1)).tolist()
        if "features" in obj:
            return [obj["features"]]
        return [obj]
    if isinstance(obj, list):
        if obj and isinstance(obj[0], (list, dict)):
            return obj
        return [[v] for v in obj] if output else [obj]
    return [[obj]]


def _frame(records: list[dict], side: str) -> pd.DataFrame:
    """Rows of one side (endpointInput or endpointOutput) indexed by (record, line)."""
    csv_lines, csv_keys, json_rows, json_keys = [], [], [], []
    skipped = 0
    for i, r in enumerate(records):
        part = (r.get("captureData") or {}).get(side)
        if not part:
            continue
        text = _payload_text(part)
        if text is None:
            continue
        ctype = (part.get("observedContentType") or "").lower()
        enc = part.get("encoding")
        if enc == "CSV" or (enc == "BASE64" and "csv" in ctype):
            lines = [ln for ln in text.splitlines() if ln.strip()]
            csv_lines.extend(lines)
            csv_keys.extend((i, j) for j in range(len(lines)))
        elif enc == "JSON" or (enc == "BASE64" and "json" in ctype):
            rows = _json_rows(json.loads(text), side == "endpointOutput")
            json_rows.extend(rows)
            json_keys.extend((i, j) for j in range(len(rows)))
        else:
            skipped += 1
    if skipped:
        log.warning("%s: %d payloads neither CSV nor JSON were left out", side, skipped)
    frames = []
    if csv_lines:
        df = pd.read_csv(io.StringIO("\n".join(csv_lines)), header=None, skipinitialspace=True)
        df.index = pd.MultiIndex.from_tuples(csv_keys, names=["record", "line"])
        frames.append(df)
    if json_rows:
        df = pd.DataFrame(json_rows)
        df.index = pd.MultiIndex.from_tuples(json_keys, names=["record", "line"])
        frames.append(df)
    if not frames:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["record", "line"]))
    return pd.concat(frames).sort_index()


def _name(df: pd.DataFrame, names: list[str] | None, default: list[str], what: str) -> pd.DataFrame:
    if names is not None:
        if len(names) != df.shape[1]:
            raise ValueError(f"{what}: payloads have {df.shape[1]} columns but {len(names)} names were given: {names}")
        return df.set_axis(names, axis=1)
    if all(isinstance(c, str) for c in df.columns):
        return df
    return df.set_axis(default, axis=1)


def read_capture(path: str | Path, input_columns: list[str] | None = None, output_columns: list[str] | None = None,
                 start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """One row per captured payload line: input columns, output columns, then METADATA_COLUMNS."""
    records = iter_records(Path(path), start, end)
    if not records:
        return pd.DataFrame(columns=list(METADATA_COLUMNS))
    inp = _frame(records, "endpointInput")
    out = _frame(records, "endpointOutput")
    inp = _name(inp, input_columns, [f"_c{i}" for i in range(inp.shape[1])], "input_columns")
    n_out = out.shape[1]
    out = _name(out, output_columns, ["prediction"] if n_out == 1 else [f"prediction_{i}" for i in range(n_out)],
                "output_columns")
    if len(inp) and len(out):
        df = inp.join(out, how="left")
    else:
        df = inp if len(inp) else out
    rec = df.index.get_level_values("record").to_numpy()
    meta = pd.DataFrame({
        "eventId": [r.get("eventMetadata", {}).get("eventId") for r in records],
        "inferenceId": [r.get("eventMetadata", {}).get("inferenceId") for r in records],
        "inferenceTime": [r.get("eventMetadata", {}).get("inferenceTime") for r in records],
        "variant": [r.get("variant") for r in records],
    })
    df = df.reset_index(drop=True)
    for c in METADATA_COLUMNS:
        df[c] = meta[c].to_numpy()[rec]
    return df


def feature_frame(df: pd.DataFrame, outputs: list[str] | None = None) -> pd.DataFrame:
    """The input feature columns of a capture frame: without metadata, prediction* and the given outputs."""
    gone = [c for c in df.columns
            if c in METADATA_COLUMNS or c in (outputs or []) or (isinstance(c, str) and c.startswith("prediction"))]
    return df.drop(columns=gone)


def name_inputs(df: pd.DataFrame, names: list[str] | None, where: str = "capture") -> pd.DataFrame:
    """Give the unnamed input columns (_c0, _c1, ...) their names; the counts must agree."""
    unnamed = [c for c in df.columns if isinstance(c, str) and c.startswith("_c") and c[2:].isdigit()]
    if not unnamed or not names:
        return df
    if len(unnamed) != len(names):
        raise ValueError(f"{where}: captured payloads have {len(unnamed)} columns but {len(names)} "
                         f"names are known ({names}); set input_columns")
    return df.rename(columns=dict(zip(unnamed, names)))
