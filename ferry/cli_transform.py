"""`ferry transform` (run a batch transform job) and `ferry transform status OUTPUT`."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

console = Console(stderr=True, soft_wrap=True)
transform_app = typer.Typer(help="Batch transform (SageMaker's CreateTransformJob) on Ray.",
                            invoke_without_command=True, no_args_is_help=True)


def _fail(message: str, code: int = 1):
    console.print(message, style="red", markup=False, highlight=False)
    raise typer.Exit(code)


def _model(model: str, file: Path):
    """A model named in the deploy file, or a path to an .onnx file."""
    from serving.spec import ModelSpec

    if model.endswith(".onnx") or "://" in model:
        return ModelSpec(name=Path(model).stem.replace("_", "-") or "model",
                         path=model if "://" in model else str(Path(model).resolve()))
    from ferry.config import ConfigError, load_config

    try:
        cfg = load_config(file)
    except ConfigError as err:
        _fail(f"--model {model!r} is not an .onnx path, and the deploy file does not load: {err}", 2)
    spec = next((m for m in cfg.models if m.name == model), None)
    if spec is None:
        _fail(f"no model {model!r} in {file}; models: {[m.name for m in cfg.models]}", 2)
    return spec.model_copy(update={"path": spec.resolved_path(file.resolve().parent)})


@transform_app.callback()
def transform(ctx: typer.Context,
              model: str = typer.Option(None, "--model", help="a model of the deploy file, or an .onnx path/URI"),
              input: str = typer.Option(None, "--input", help="a file, a folder or an fsspec prefix"),
              output: str = typer.Option(None, "--output", help="the output folder (or fsspec prefix)"),
              file: Path = typer.Option(Path("ferry.yaml"), "-f", "--file", help="the deploy file naming --model"),
              name: str = typer.Option("transform", "--name", help="TransformJobName"),
              content_type: str = typer.Option("text/csv", "--content-type", help="text/csv, application/jsonlines, "
                                                                                  "application/json"),
              accept: str = typer.Option(None, "--accept", help="the output's type (default: the input's)"),
              split_type: str = typer.Option("Line", "--split-type", help="Line | None"),
              batch_strategy: str = typer.Option("MultiRecord", "--batch-strategy", help="MultiRecord | SingleRecord"),
              max_payload_mb: float = typer.Option(6, "--max-payload-mb", help="MaxPayloadInMB"),
              input_filter: str = typer.Option("$", "--input-filter", help="JSONPath, e.g. '$[1:]', '$.features'"),
              output_filter: str = typer.Option("$", "--output-filter", help="JSONPath, e.g. '$[0,-1]'"),
              join_source: str = typer.Option("None", "--join-source", help="None | Input"),
              assemble_with: str = typer.Option("Line", "--assemble-with", help="Line | None"),
              max_concurrent: int = typer.Option(None, "--max-concurrent-transforms", help="onnxruntime sessions at "
                                                                                           "once (default: Ray's CPUs)"),
              compute: str = typer.Option("core", "--compute", help="core (Ray tasks, each Ray worker keeps the "
                                                                     "session) | tasks (Ray Data tasks) | actors "
                                                                     "(a Ray Data actor pool for the job)"),
              address: str = typer.Option(None, "--address", help="a Ray cluster's address (default: RAY_ADDRESS, "
                                                                   "else a Ray left by `ray start`, else a new local "
                                                                   "Ray)")):
    """Run a batch transform job: one <input>.out per input file, and a job record, under --output.

    A rerun with the same options skips the files the last run completed."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [o for o, v in (("--model", model), ("--input", input), ("--output", output)) if not v]
    if missing:
        _fail(f"ferry transform needs {', '.join(missing)} (or: ferry transform status OUTPUT)", 2)
    from serving.transform import TransformJob, run_transform

    try:
        job = TransformJob(name=name, model=_model(model, file), input=input, output=output,
                           content_type=content_type, accept=accept, split_type=split_type,
                           batch_strategy=batch_strategy, max_payload_mb=max_payload_mb, input_filter=input_filter,
                           output_filter=output_filter, join_source=join_source, assemble_with=assemble_with,
                           max_concurrent_transforms=max_concurrent, compute=compute)
    except ValidationError as err:
        _fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'job'}: {e['msg']}" for e in err.errors()), 2)
    logging.getLogger("ray").setLevel(logging.WARNING)
    try:
        record = run_transform(job, address=address, progress=True)
    except FileNotFoundError as err:
        _fail(str(err), 2)
    _show(record)
    if record["status"] != "Completed":
        raise typer.Exit(1)


@transform_app.command("status")
def status(output: str = typer.Argument(..., help="the job's --output")):
    """Show the record of the transform job written to OUTPUT."""
    from serving.transform import job_status

    record = job_status(output)
    if record is None:
        _fail(f"no transform job record in {output}", 2)
    _show(record)


def _show(record: dict) -> None:
    rows = record["rows"]
    console.print(f"{record['name']}: {record['status']}, {rows['done']} rows done, {rows['failed']} failed, "
                  f"{record.get('seconds') or 0:.1f} s", markup=False, highlight=False)
    table = Table("input", "status", "rows done", "failed", "output")
    for name, f in record["files"].items():
        table.add_row(name, f["status"], str(f["rows_done"]), str(f["rows_failed"]), f["output"])
    Console(soft_wrap=True).print(table)
    for x in record["failures"][:10]:
        console.print(f"  {x['file']} line {x['line']}: {x['reason']}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(transform_app, name="transform")
