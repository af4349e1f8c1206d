"""The one table reader of the CLIs and the monitor: CSV, Parquet, JSON Lines, or captured data.

A `.jsonl` / `.json` file is JSON Lines (or a JSON table) of rows, unless its first record is a SageMaker
capture record (it has `captureData`): then it is read as captured data, as a folder is (capture JSONL at any
depth, see monitor.capture_reader; event metadata columns kept).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from monitor.capture_reader import name_inputs, read_capture

CSV_SUFFIXES = (".csv", ".txt", ".gz")


def _is_capture(p: Path) -> bool:
    with open(p, encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(record, dict) and "captureData" in record


def load_table(path: str | Path, header: bool = True, output_columns: list[str] | None = None) -> pd.DataFrame:
    """Read a table by its kind; `header=False` reads a CSV's first line as data (columns 0, 1, ...)."""
    p = Path(path)
    if p.is_dir():
        return read_capture(p, output_columns=output_columns)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file or folder")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if suffix in (".jsonl", ".json"):
        if _is_capture(p):
            return read_capture(p, output_columns=output_columns)
        return pd.read_json(p, lines=suffix == ".jsonl")
    if suffix in CSV_SUFFIXES:
        return pd.read_csv(p, header=0 if header else None)
    raise ValueError(f"{p}: data must be CSV ({', '.join(CSV_SUFFIXES)}), Parquet (.parquet), JSON Lines (.jsonl) "
                     "or captured data (capture JSONL or its folder)")


def load_window(path: str | Path, input_columns: list[str] | None = None,
                output_columns: list[str] | None = None) -> pd.DataFrame:
    """A table, or captured data whose unnamed input columns take input_columns' names."""
    return name_inputs(load_table(path, output_columns=output_columns), input_columns, str(path))
