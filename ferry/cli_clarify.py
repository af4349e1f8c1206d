"""`ferry bias` and `ferry explain`: Clarify bias reports and SHAP explanations from files."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import List, Optional

import typer

log = logging.getLogger(__name__)


def _fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def read_table(path: Path, header: bool = True):
    """A CSV, Parquet or JSON Lines file (or captured data) as a DataFrame (monitor.tables.load_table)."""
    from monitor.tables import load_table

    try:
        return load_table(path, header)
    except (FileNotFoundError, ValueError) as err:
        _fail(str(err))


def _number(text: str, option: str):
    try:
        return int(text) if re.fullmatch(r"[+-]?\d+", text.strip()) else float(text)
    except ValueError:
        _fail(f"{option} needs a number, not {text!r}")


def _split(values: Optional[List[str]]) -> list[str]:
    """Repeated options, each of which may hold several comma-separated values."""
    return [v for item in values or [] for v in item.split(",") if v != ""]


FACET_HELP = "facet column; repeat for several. NAME>T: d = NAME > T; NAME=V1,V2 (or V1|V2): d = those values"
FACET_VALUE_HELP = "facet value(s) forming d (COL=V with several facets); none = one-vs-all"
FACET_THRESHOLD_HELP = "d = facet > T (COL=T with several facets)"


def parse_facets(facets: List[str], values: Optional[List[str]] = None, thresholds: Optional[List[str]] = None):
    """The facet grammar of `ferry bias`, `ferry baseline --type bias` and `ferry monitor bias`.

    --facet NAME, or inline NAME>T (threshold) or NAME=V1,V2 (values; `|` also separates them); then
    --facet-value and --facet-threshold: with one facet they are its own, with several each is written COL=V
    (e.g. --facet-value sex=F --facet-threshold age=40). Returns clarify Facets."""
    from clarify import ClarifyInputError, Facet

    names: list[str] = []
    per_values: dict[str, list] = {}
    per_threshold: dict[str, object] = {}
    for item in facets:
        name, op, rest = next(((item.partition(c)) for c in (">", "=") if c in item), (item, "", ""))
        names.append(name)
        per_values[name] = _split([rest.replace("|", ",")]) if op == "=" else []
        if op == ">":
            per_threshold[name] = _number(rest, f"--facet {item}")
    for option, items in (("--facet-value", values or []), ("--facet-threshold", thresholds or [])):
        for item in items:
            col, sep, rest = item.partition("=")
            if sep and col in per_values:
                target, text = col, rest
            elif len(names) == 1:
                target, text = names[0], item
            else:
                _fail(f"{option} {item!r}: with several facets write it as COL=VALUE, COL one of {', '.join(names)}")
            if option == "--facet-value":
                per_values[target].extend(_split([text]))
            else:
                per_threshold[target] = _number(text, option)
    try:
        return [Facet(n, values=per_values[n] or None, threshold=per_threshold.get(n)) for n in names]
    except ClarifyInputError as err:
        _fail(str(err))


def bias(
    data: Path = typer.Option(..., "--data", help="CSV, Parquet or JSON Lines file"),
    label: str = typer.Option(..., "--label", help="label column"),
    positive_label: Optional[List[str]] = typer.Option(None, "--positive-label", help="positive label value(s); repeat or comma-separate"),
    label_threshold: Optional[str] = typer.Option(None, "--label-threshold", help="positive = label > T (continuous labels)"),
    facet: List[str] = typer.Option(..., "--facet", help=FACET_HELP),
    facet_value: Optional[List[str]] = typer.Option(None, "--facet-value", help=FACET_VALUE_HELP),
    facet_threshold: Optional[List[str]] = typer.Option(None, "--facet-threshold", help=FACET_THRESHOLD_HELP),
    group: Optional[str] = typer.Option(None, "--group", help="group variable for CDDL/CDDPL"),
    predicted_label: Optional[str] = typer.Option(None, "--predicted-label", help="predicted label column"),
    probability: Optional[str] = typer.Option(None, "--probability", help="predicted probability column"),
    probability_threshold: float = typer.Option(0.5, "--probability-threshold", help="predicted positive = probability > P"),
    stage: Optional[str] = typer.Option(None, "--stage", help="pre | post | all (default: all with predictions, else pre)"),
    methods: str = typer.Option("all", "--methods", help="all, or metric names: CI,DPL,DI,..."),
    features: Optional[List[str]] = typer.Option(None, "--features", help="feature columns for the Flip Test (default: all others)"),
    out: Path = typer.Option(..., "--out", help="report.json to write (Clarify analysis.json shape)"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write a self-contained HTML report"),
    explanation: Optional[Path] = typer.Option(None, "--explanation", help="an analysis.json from `ferry explain` to merge into the report and the HTML"),
) -> None:
    """Pre- and post-training bias metrics (SageMaker Clarify's, smclarify's numbers) for one or more facets."""
    from clarify import ClarifyInputError, bias_report
    from core.jsonio import write_json

    df = read_table(data)
    try:
        report = bias_report(
            df, label, _split(positive_label) or None, parse_facets(facet, facet_value, facet_threshold),
            label_threshold=_number(label_threshold, "--label-threshold") if label_threshold is not None else None,
            predicted_label=predicted_label, probability=probability, probability_threshold=probability_threshold,
            group=group, methods=methods, stage=stage, features=_split(features) or None)
    except ClarifyInputError as exc:
        _fail(str(exc))
    except ValueError as exc:  # an unknown metric name
        _fail(str(exc))
    shap = None
    if explanation:
        if not explanation.exists():
            _fail(f"explanation file {str(explanation)!r} does not exist")
        shap = json.loads(explanation.read_text())
        report = {**report, **{k: v for k, v in shap.items() if k != "version"}}
    write_json(out, report)
    _summary(report)
    typer.echo(f"wrote {out}")
    if html:
        from clarify.htmlreport import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(report=report, explanation=shap, title=f"Bias report: {data.name}"))
        typer.echo(f"wrote {html}")


def _summary(report: dict) -> None:
    """A table per stage and facet on stderr: metrics down, facet values across."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    for key in ("pre_training_bias_metrics", "post_training_bias_metrics"):
        for facet, entries in report.get(key, {}).get("facets", {}).items():
            table = Table(title=f"{key.replace('_', ' ')}: {facet}")
            table.add_column("metric")
            for e in entries:
                table.add_column(e["value_or_threshold"], justify="right")
            for i, m in enumerate(entries[0]["metrics"]):
                cells = [e["metrics"][i] for e in entries]
                table.add_row(m["name"], *["error" if "error" in c else c["value"] if isinstance(c["value"], str)
                                           else f"{c['value']:.4g}" for c in cells])
            console.print(table)


def explain(
    model: Path = typer.Option(..., "--model", help="ONNX model file"),
    data: Path = typer.Option(..., "--data", help="rows to explain: CSV, Parquet or JSON Lines"),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="baseline rows (default: k-means of the data)"),
    out: Path = typer.Option(..., "--out", help="analysis.json to write"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write a self-contained HTML report"),
    features: Optional[List[str]] = typer.Option(None, "--features", help="feature columns, in the model's order"),
    drop: Optional[List[str]] = typer.Option(None, "--drop", help="columns that are not features (label, ids)"),
    header: bool = typer.Option(True, "--header/--no-header", help="whether CSV files have a header row"),
    feature_names: Optional[List[str]] = typer.Option(None, "--feature-names", help=(
        "names of the columns of headerless rows, in order (default: the model's feature_names metadata, "
        "else feature_0, feature_1, ...)")),
    method: str = typer.Option("auto", "--method", help="auto | exact | kernel"),
    num_samples: Optional[int] = typer.Option(None, "--num-samples", help="KernelSHAP coalitions per row"),
    num_clusters: int = typer.Option(10, "--num-clusters", help="k-means baseline size when no --baseline"),
    agg_method: str = typer.Option("mean_abs", "--agg-method", help="mean_abs | median | mean_sq"),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", help="explain a seeded sample of this many rows"),
    seed: int = typer.Option(0, "--seed"),
    output: Optional[str] = typer.Option(None, "--output", help="model output to explain (default: probabilities)"),
    save_local: bool = typer.Option(False, "--save-local", help="also write each row's SHAP values"),
) -> None:
    """SHAP explanations of an ONNX model (KernelSHAP, or exact for few features), Clarify's analysis.json shape."""
    from rich.progress import Progress

    from clarify import ClarifyInputError
    from core.jsonio import write_json
    from clarify.explanations import explain as run_explain

    names = _split(feature_names) or (None if header else _model_feature_names(model))

    def frame(path: Path, strict: bool):
        df = read_table(path, header)
        if names is not None and not header:
            if len(names) != df.shape[1]:
                _fail(f"{path.name} has {df.shape[1]} columns but {len(names)} feature names were given")
            df.columns = names
        else:
            df.columns = [str(c) if header else f"feature_{c}" for c in df.columns]
        cols = _split(drop)
        missing = [c for c in cols if c not in df.columns]
        if missing and strict:
            _fail(f"--drop column(s) {', '.join(missing)} are not in {path.name}")
        return df.drop(columns=[c for c in cols if c in df.columns])

    rows = frame(data, strict=True)
    if max_rows is not None and len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed)
    base = frame(baseline, strict=False) if baseline else None  # a baseline may lack the dropped columns
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task("SHAP", total=len(rows))
            result = run_explain(str(model), rows, base, features=_split(features) or None, method=method,
                                 num_samples=num_samples, num_clusters=num_clusters, agg_method=agg_method, seed=seed,
                                 output=output, save_local=save_local,
                                 progress=lambda done, total: bar.update(task, completed=done))
    except ClarifyInputError as exc:
        _fail(str(exc))
    write_json(out, result)
    for label, entry in result["explanations"]["kernel_shap"].items():
        top = sorted(entry["global_shap_values"].items(), key=lambda kv: -kv[1])[:5]
        typer.echo(f"{label}: expected {entry['expected_value']:.4g}; top: "
                   + ", ".join(f"{k} {v:.3g}" for k, v in top))
    typer.echo(f"wrote {out}")
    if html:
        from clarify.htmlreport import render_html

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(explanation=result, title=f"Explanations: {model.name}"))
        typer.echo(f"wrote {html}")


def _model_feature_names(model: Path) -> Optional[list[str]]:
    from core.onnx import feature_names

    return feature_names(str(model)) if model.is_file() else None


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""
    app.command("bias", help="Bias metrics (pre/post-training) for facets of a dataset, as SageMaker Clarify.")(bias)
    app.command("explain", help="SHAP explanations of an ONNX model, as SageMaker Clarify.")(explain)
