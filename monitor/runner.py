"""Run a monitoring schedule once over its window; list and read executions.

An execution folder is <output>/<endpoint>/<schedule>/<YYYY-MM-DDTHH-MM-SSZ>/ holding the job's reports
and execution.json: status Completed | CompletedWithViolations | Failed, failure_reason, the window,
timings and the violation count.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from core.jsonio import read_json, write_json
from monitor import ground_truth, jobs, metrics
from monitor.capture_reader import name_inputs, read_capture
from monitor.spec import ScheduleBase

log = logging.getLogger(__name__)
TS_FORMAT = "%Y-%m-%dT%H-%M-%SZ"


@dataclass
class Execution:
    endpoint: str
    schedule: str
    monitor_type: str
    status: str
    failure_reason: str | None
    window_start: str
    window_end: str
    started_at: str
    finished_at: str
    item_count: int
    violation_count: int
    path: str


class NoData(Exception):
    """The window holds nothing to monitor."""


def window_for(spec: ScheduleBase, run_time: datetime) -> tuple[datetime, datetime]:
    return (run_time - timedelta(seconds=spec.window_start_offset_s),
            run_time - timedelta(seconds=spec.window_end_offset_s))


def _load_window(spec: ScheduleBase, start: datetime, end: datetime) -> pd.DataFrame:
    folder = Path(spec.capture) / spec.endpoint
    if not folder.is_dir():
        raise NoData(f"no captured data in window: capture folder {folder} does not exist")
    df = read_capture(folder, input_columns=None, output_columns=spec.output_columns, start=start, end=end)
    if df.empty:
        raise NoData(f"no captured data in window {start:%Y-%m-%dT%H:%M:%SZ} - {end:%Y-%m-%dT%H:%M:%SZ}")
    return name_inputs(df, spec.payload_columns(), "input_columns")


def _run_job(spec: ScheduleBase, df: pd.DataFrame, out: Path) -> jobs.JobResult:
    if spec.needs_ground_truth:
        df = ground_truth.merge(df, ground_truth.read(spec.ground_truth))
        if df.empty:
            raise NoData("no captured record in the window has ground truth yet")
    return spec.job(df, out)


def run_once(spec: ScheduleBase, run_time: datetime | None = None,
             data: pd.DataFrame | None = None) -> Execution:
    """One execution of a schedule over the window ending at run_time (now by default); never raises."""
    run_time = (run_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
    start, end = window_for(spec, run_time)
    out = Path(spec.output) / spec.endpoint / spec.name / run_time.strftime(TS_FORMAT)
    started = datetime.now(timezone.utc)
    status, reason, violations, items = "Failed", None, [], 0
    try:
        df = data if data is not None else _load_window(spec, start, end)
        items = len(df)
        result = _run_job(spec, df, out)
        violations = result.violations
        status = "CompletedWithViolations" if violations else "Completed"
    except NoData as err:
        reason, result = str(err), None
    except Exception as err:  # noqa: BLE001 - an execution records its failure instead of raising
        log.exception("monitoring schedule %s/%s failed", spec.endpoint, spec.name)
        reason, result = f"{type(err).__name__}: {err}", None
    finished = datetime.now(timezone.utc)
    ex = Execution(spec.endpoint, spec.name, spec.monitor_type, status, reason, _iso(start), _iso(end),
                   _iso(started), _iso(finished), items, len(violations), str(out))
    write_json(out / "execution.json", asdict(ex))
    metrics.publish(spec.endpoint, spec.name, spec.monitor_type, status, time.time(), violations,
                    result.gauges if result else {})
    log.info("monitoring %s/%s: %s%s", spec.endpoint, spec.name, status, f" ({reason})" if reason else "")
    return ex


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def list_executions(output: str | Path, endpoint: str | None = None, schedule: str | None = None) -> list[dict]:
    """execution.json of every execution under output, oldest first."""
    root = Path(output)
    pattern = f"{endpoint or '*'}/{schedule or '*'}/*/execution.json"
    return [read_json(p) for p in sorted(root.glob(pattern), key=lambda p: p.parent.name)]


def show_execution(path: str | Path) -> dict:
    """An execution's record with its violations (and reports' names)."""
    p = Path(path)
    ex = read_json(p / "execution.json")
    v = p / "constraint_violations.json"
    ex["violations"] = read_json(v).get("violations", []) if v.is_file() else []
    ex["reports"] = sorted(f.name for f in p.glob("*.json"))
    return ex
