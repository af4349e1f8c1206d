"""Ground-truth records (SageMaker's JSONL shape) and their join to captured rows.

A record is {"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "<id>"},
"eventVersion": "0"}; its eventId names the capture's inferenceId when the caller gave one, else the
capture's eventId. A multi-line data field labels the capture's payload lines in order.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

GROUND_TRUTH_COLUMN = "groundTruth"


def record(event_id: str, label, event_version: str = "0") -> dict:
    """One ground-truth record."""
    return {"groundTruthData": {"data": str(label), "encoding": "CSV"},
            "eventMetadata": {"eventId": str(event_id)}, "eventVersion": event_version}


def parse(records: list[dict]) -> pd.DataFrame:
    """Records -> DataFrame[joinKey, line, groundTruth]; a bad record raises naming its field."""
    keys, data = [], []
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ValueError(f"ground truth record {i} is not an object")
        gt = r.get("groundTruthData")
        if not isinstance(gt, dict) or not isinstance(gt.get("data"), (str, int, float)):
            raise ValueError(f"ground truth record {i}: groundTruthData.data is missing (a string)")
        if gt.get("encoding", "CSV") != "CSV":
            raise ValueError(f"ground truth record {i}: groundTruthData.encoding must be CSV, got "
                             f"{str(gt.get('encoding'))[:40]!r}")
        meta = r.get("eventMetadata")
        eid = meta.get("eventId") if isinstance(meta, dict) else None
        if not isinstance(eid, (str, int)) or isinstance(eid, bool) or eid == "":
            raise ValueError(f"ground truth record {i}: eventMetadata.eventId is missing (a string)")
        keys.append(str(eid))
        data.append(str(gt["data"]))
    df = pd.DataFrame({"joinKey": keys, GROUND_TRUTH_COLUMN: pd.Series(data, dtype=object).str.split("\n")})
    df = df.explode(GROUND_TRUTH_COLUMN)  # index = record number
    df[GROUND_TRUTH_COLUMN] = df[GROUND_TRUTH_COLUMN].str.strip()
    df["line"] = df.groupby(level=0).cumcount()
    # a label posted again for the same event replaces the earlier one
    df = df.drop_duplicates(["joinKey", "line"], keep="last").reset_index(drop=True)
    return df


def write(records: list[dict], folder: str | Path, now: datetime | None = None) -> Path:
    """Validate ground-truth records and append them under <folder>/yyyy/mm/dd/hh/ (collection time, as the
    service stores them); a bad record raises before anything is written."""
    parse(records)
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    path = Path(folder) / f"{now:%Y/%m/%d/%H}" / "ground-truth.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    return path


def read(path: str | Path) -> pd.DataFrame:
    """Ground truth from a JSONL file or a folder of them (any depth)."""
    p = Path(path)
    files = sorted(p.rglob("*.jsonl")) if p.is_dir() else [p]
    if not files or not files[0].exists():
        raise FileNotFoundError(f"{p}: no ground-truth JSONL found")
    records = []
    for f in files:
        for n, line in enumerate(f.read_text().splitlines()):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{f}:{n + 1}: not JSON: {err}") from None
    return parse(records)


def merge(captured: pd.DataFrame, ground_truth: pd.DataFrame) -> pd.DataFrame:
    """Captured rows that have a label, with a groundTruth column (inner join on inferenceId else eventId;
    numeric when every label is a number)."""
    if "eventId" not in captured.columns:
        raise ValueError("captured data has no 'eventId' column (read it with monitor.capture_reader)")
    cap = captured.copy()
    key = cap["eventId"].astype(object)
    if "inferenceId" in cap.columns:
        key = cap["inferenceId"].where(cap["inferenceId"].notna() & (cap["inferenceId"] != ""), key)
    cap["joinKey"] = key.astype(str)
    cap["line"] = cap.groupby("joinKey").cumcount()
    out = cap.merge(ground_truth[["joinKey", "line", GROUND_TRUTH_COLUMN]], on=["joinKey", "line"], how="inner")
    numeric = pd.to_numeric(out[GROUND_TRUTH_COLUMN], errors="coerce")
    if len(out) and numeric.notna().all():  # labels arrive as CSV text; numbers become numbers
        out[GROUND_TRUTH_COLUMN] = numeric
    return out.drop(columns=["joinKey", "line"])
