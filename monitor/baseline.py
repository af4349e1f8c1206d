"""Data-quality baseline: statistics.json and suggested constraints.json from a training table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from core.jsonio import read_json, write_json
from monitor.constraints import suggest
from monitor.statistics import profile, statistics_json


def suggest_baseline(df: pd.DataFrame, out_dir: str | Path | None = None,
                     monitoring_config: dict | None = None) -> tuple[dict, dict]:
    """Profile df; return (statistics, constraints) and write them to out_dir when given."""
    if df.empty:
        raise ValueError("baseline data has no rows")
    df = df.rename(columns=str)
    profiles = profile(df)
    statistics = statistics_json(df, profiles)
    constraints = suggest(profiles, monitoring_config)
    if out_dir is not None:
        write_json(Path(out_dir) / "statistics.json", statistics)
        write_json(Path(out_dir) / "constraints.json", constraints)
    return statistics, constraints


def load_baseline(baseline_dir: str | Path) -> tuple[dict, dict]:
    """Read statistics.json and constraints.json from a baseline folder."""
    d = Path(baseline_dir)
    return read_json(d / "statistics.json"), read_json(d / "constraints.json")
