"""Load a window or a baseline table: CSV with a header, Parquet, or a folder of capture JSONL."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from monitor.capture_reader import name_inputs, read_capture


def load_table(path: str | Path, output_columns: list[str] | None = None) -> pd.DataFrame:
    """Read a table by its kind; capture folders keep event metadata columns (see read_capture)."""
    p = Path(path)
    if p.is_dir():
        return read_capture(p, output_columns=output_columns)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file or folder")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if suffix in (".jsonl", ".json"):
        return read_capture(p, output_columns=output_columns)
    return pd.read_csv(p)


def load_window(path: str | Path, input_columns: list[str] | None = None,
                output_columns: list[str] | None = None) -> pd.DataFrame:
    """A table, or captured data whose unnamed input columns take input_columns' names."""
    return name_inputs(load_table(path, output_columns=output_columns), input_columns, str(path))
