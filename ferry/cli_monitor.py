"""`ferry baseline` and `ferry monitor ...`: thin wrappers over monitor.jobs and monitor.runner."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Optional, get_args

import typer

from ferry.cli_clarify import FACET_HELP, FACET_THRESHOLD_HELP, FACET_VALUE_HELP, parse_facets
from monitor.spec import SCHEDULE_TYPES, ProblemType

monitor_app = typer.Typer(help="Model Monitor: data quality, model quality, bias drift, attribution drift.",
                          no_args_is_help=True)


Kind = Enum("Kind", {name: name.replace("_", "-") for name in SCHEDULE_TYPES}, type=str)


Problem = Enum("Problem", {name: name for name in get_args(ProblemType)}, type=str)


def _fail(msg: str) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(2)


def _split(v: Optional[str]) -> Optional[list[str]]:
    return [x.strip() for x in v.split(",") if x.strip()] if v else None


def _label_value(v: str):
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


def _report(result, out: Path) -> None:
    status = "CompletedWithViolations" if result.violations else "Completed"
    typer.echo(json.dumps({"status": status, "violations": result.violations, "notes": result.notes,
                           "out": str(out)}, indent=2, default=str))


def _with_labels(df, ground_truth: Optional[Path]):
    if ground_truth is None:
        return df
    from monitor import ground_truth as gt
    return gt.merge(df, gt.read(ground_truth))


DATA = typer.Option(..., "--data", help="CSV with a header, Parquet, JSON Lines of rows, or captured data (capture JSONL, a file or folder)")
OUT = typer.Option(..., "--out", help="output folder")
BASELINE = typer.Option(..., "--baseline", help="baseline folder")


def baseline(
    data: Path = DATA, out: Path = OUT,
    kind: Kind = typer.Option(Kind.data_quality, "--type", help="which baseline"),
    exclude: Optional[str] = typer.Option(None, help="data-quality: comma-separated columns to leave out"),
    input_columns: Optional[str] = typer.Option(None, help="names of captured CSV columns, comma-separated"),
    problem_type: Problem = typer.Option(Problem.BinaryClassification, help="model-quality problem type"),
    label: str = typer.Option("label", help="model-quality/bias: ground-truth label column"),
    prediction: str = typer.Option("prediction", help="predicted label column"),
    probability: Optional[str] = typer.Option(None, help="probability column"),
    probability_threshold: Optional[float] = typer.Option(None, help="predicted = probability > threshold"),
    positive_label: str = typer.Option("1", help="positive label value"),
    facet: list[str] = typer.Option([], "--facet", help="bias: " + FACET_HELP),
    facet_value: Optional[list[str]] = typer.Option(None, "--facet-value", help="bias: " + FACET_VALUE_HELP),
    facet_threshold: Optional[list[str]] = typer.Option(None, "--facet-threshold", help="bias: " + FACET_THRESHOLD_HELP),
    model: Optional[Path] = typer.Option(None, help="attribution: ONNX model"),
    features: Optional[str] = typer.Option(None, help="attribution: model feature columns, comma-separated"),
) -> None:
    """Write a baseline (statistics.json + constraints.json, or analysis.json) from a dataset."""
    from monitor.spec import BaselineOptions
    from monitor.tables import load_window
    try:
        df = load_window(data, _split(input_columns))
        facets = parse_facets(facet, facet_value, facet_threshold) if facet else ()
        options = BaselineOptions(
            exclude=tuple(_split(exclude) or ()), problem_type=problem_type.value, label=label, prediction=prediction,
            probability=probability, probability_threshold=probability_threshold,
            positive_label=_label_value(positive_label), facets=tuple(facets),
            model=None if model is None else str(model), features=tuple(_split(features) or ()))
        SCHEDULE_TYPES[kind.name].write_baseline(df, out, options)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))
    typer.echo(f"baseline written to {out}")


@monitor_app.command("data-quality")
def data_quality_cmd(
    baseline: Path = BASELINE, data: Path = DATA, out: Path = OUT,
    min_rows: int = typer.Option(50, help="below this many rows, drift checks are skipped"),
    input_columns: Optional[str] = typer.Option(None, help="names of captured CSV columns (default: baseline's)"),
    exclude: Optional[str] = typer.Option(None, help="comma-separated columns to leave out (e.g. id, label)"),
) -> None:
    """Check a dataset against a data-quality baseline; write constraint_violations.json."""
    from monitor import jobs
    from monitor.capture_reader import METADATA_COLUMNS, feature_frame
    from core.jsonio import read_json
    from monitor.tables import load_window
    try:
        names = _split(input_columns) or [f["name"] for f in read_json(baseline / "constraints.json")["features"]]
        df = load_window(data, names)
        if set(METADATA_COLUMNS) <= set(df.columns):  # captured data: inputs only
            df = feature_frame(df)
        df = df.drop(columns=[c for c in _split(exclude) or [] if c in df.columns])
        _report(jobs.data_quality(df, baseline, out, min_rows), out)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err))


@monitor_app.command("model-quality")
def model_quality_cmd(
    baseline: Path = BASELINE, data: Path = DATA, out: Path = OUT,
    ground_truth: Optional[Path] = typer.Option(None, help="ground-truth JSONL file/folder to join to captures"),
    problem_type: Problem = typer.Option(Problem.BinaryClassification),
    label: str = typer.Option("groundTruth", help="label column"),
    prediction: str = typer.Option("prediction"),
    probability: Optional[str] = typer.Option(None),
    probability_threshold: Optional[float] = typer.Option(None),
    positive_label: str = typer.Option("1"),
) -> None:
    """Model-quality metrics of a dataset against the baseline constraints."""
    from monitor import jobs
    from monitor.tables import load_window
    try:
        df = _with_labels(load_window(data), ground_truth)
        _report(jobs.model_quality(df, baseline, out, problem_type.value, label, prediction, probability,
                                   probability_threshold, _label_value(positive_label)), out)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))


@monitor_app.command("bias")
def bias_cmd(
    baseline: Path = BASELINE, data: Path = DATA, out: Path = OUT,
    facet: list[str] = typer.Option(..., "--facet", help=FACET_HELP),
    facet_value: Optional[list[str]] = typer.Option(None, "--facet-value", help=FACET_VALUE_HELP),
    facet_threshold: Optional[list[str]] = typer.Option(None, "--facet-threshold", help=FACET_THRESHOLD_HELP),
    ground_truth: Optional[Path] = typer.Option(None),
    label: str = typer.Option("groundTruth"),
    positive_label: str = typer.Option("1"),
    prediction: Optional[str] = typer.Option("prediction"),
    input_columns: Optional[str] = typer.Option(None, help="names of captured CSV columns"),
) -> None:
    """Bias metrics (clarify) of a dataset against the baseline analysis.json."""
    from monitor import jobs
    from monitor.tables import load_window
    try:
        df = _with_labels(load_window(data, _split(input_columns)), ground_truth)
        _report(jobs.bias(df, baseline, out, label=label, positive_label_values=[_label_value(positive_label)],
                          facets=parse_facets(facet, facet_value, facet_threshold), predicted_label=prediction), out)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))


@monitor_app.command("attribution")
def attribution_cmd(
    baseline: Path = BASELINE, data: Path = DATA, out: Path = OUT,
    model: Path = typer.Option(..., help="ONNX model"),
    features: str = typer.Option(..., help="model feature columns, comma-separated, in model order"),
    threshold: float = typer.Option(0.90, help="NDCG below this is a violation"),
    max_rows: int = typer.Option(500, help="rows of the window explained"),
) -> None:
    """Feature-attribution drift (NDCG of global SHAP) of a dataset against the baseline analysis.json."""
    from monitor import jobs
    from monitor.tables import load_window
    try:
        names = _split(features)
        df = load_window(data, names)
        _report(jobs.attribution(df, baseline, out, str(model), names, threshold, max_rows), out)
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))


def _schedules(config: Path):
    from ferry.config import ConfigError, load_config
    try:
        return load_config(config).monitoring_schedules
    except ConfigError as err:
        _fail(str(err))


@monitor_app.command("run")
def run_cmd(
    config: Path = typer.Option(Path("ferry.yaml"), "--config", "-f", help="deploy file"),
    once: bool = typer.Option(False, "--once", help="run each schedule once and exit"),
    schedule: Optional[str] = typer.Option(None, help="only this schedule"),
    at: Optional[str] = typer.Option(None, help="run time (ISO-8601 UTC) whose window is checked; default now"),
    metrics_port: Optional[int] = typer.Option(None, help="serve the ferry_monitor_* metrics on /metrics at this port"),
    metrics_host: str = typer.Option("127.0.0.1", help="address of the metrics server (0.0.0.0 in a pod)"),
) -> None:
    """Run the deploy file's monitoring schedules (once, or on their intervals until interrupted)."""
    from monitor.runner import run_once
    specs = [s for s in _schedules(config) if schedule is None or s.name == schedule]
    if not specs:
        _fail(f"no monitoring schedule{' named ' + schedule if schedule else ''} in {config}")
    if metrics_port is not None:
        from prometheus_client import start_http_server
        start_http_server(metrics_port, addr=metrics_host)
    if once:
        when = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else datetime.now(timezone.utc)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        results = [run_once(s, when) for s in specs]
        typer.echo(json.dumps([r.__dict__ for r in results], indent=2))
        raise typer.Exit(1 if any(r.status == "Failed" for r in results) else 0)
    import time

    from monitor.service import MonitorService
    svc = MonitorService(specs)
    svc.start()
    typer.echo(f"monitoring {len(specs)} schedule(s); Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        svc.stop()


@monitor_app.command("archive-captures")
def archive_cmd(
    topic: str = typer.Option(..., help="capture topic (the endpoint's kafka://<topic>)"),
    endpoint: str = typer.Option(..., help="endpoint whose captures the topic holds"),
    destination: Path = typer.Option(Path("capture"), help="capture root the monitor reads"),
    bootstrap_servers: str = typer.Option("127.0.0.1:9092", help="Kafka host:port[,host:port]"),
    idle_exit_s: Optional[float] = typer.Option(None, help="exit after this long without records"),
) -> None:
    """Copy a Kafka capture topic into <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/ JSONL files."""
    from serving.capture.archive import archive_topic
    n = archive_topic(bootstrap_servers, topic, destination, endpoint, idle_exit_s=idle_exit_s)
    typer.echo(f"{n} records archived to {destination / endpoint}")


@monitor_app.command("list")
def list_cmd(
    output: Path = typer.Option(Path("monitoring"), help="monitoring output root"),
    endpoint: Optional[str] = None, schedule: Optional[str] = None,
) -> None:
    """Executions under the output root, oldest first."""
    from rich.console import Console
    from rich.table import Table

    from monitor.runner import list_executions
    t = Table("endpoint", "schedule", "type", "window end", "status", "violations", "reason", "path")
    for e in list_executions(output, endpoint, schedule):
        t.add_row(e["endpoint"], e["schedule"], e["monitor_type"], e["window_end"], e["status"],
                  str(e["violation_count"]), e.get("failure_reason") or "", e["path"])
    Console().print(t)


@monitor_app.command("show")
def show_cmd(path: Path = typer.Argument(..., help="an execution folder")) -> None:
    """An execution's record and violations as JSON."""
    from monitor.runner import show_execution
    try:
        typer.echo(json.dumps(show_execution(path), indent=2))
    except (ValueError, FileNotFoundError) as err:
        _fail(str(err))


def register(app: typer.Typer) -> None:
    """Add `ferry baseline` and `ferry monitor ...` to the main app."""
    app.command("baseline")(baseline)
    app.add_typer(monitor_app, name="monitor")
