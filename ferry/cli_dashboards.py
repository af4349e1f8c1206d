"""`ferry dashboards ...`: Ferry's Grafana dashboards and alert rules, pushed to a Grafana server or previewed
from a Prometheus server (needs the [dashboards] extra)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

dashboards_app = typer.Typer(help="Grafana dashboards and alert rules: push them to Grafana, or preview them from "
                                  "Prometheus.", no_args_is_help=True)


def _need_extra() -> None:
    try:
        import grafana_foundation_sdk  # noqa: F401
    except ImportError:
        typer.echo("ferry dashboards needs the dashboards extra: pip install 'ferry[dashboards]'", err=True)
        raise typer.Exit(2)


@dashboards_app.command("push")
def push_cmd(url: str = typer.Option(..., "--url", help="Grafana's base URL, e.g. http://127.0.0.1:3000"),
             token: Optional[str] = typer.Option(None, "--token", envvar="GRAFANA_TOKEN",
                                                 help="a Grafana service-account token (or $GRAFANA_TOKEN)"),
             datasource_uid: str = typer.Option("prometheus", "--datasource-uid",
                                                help="uid of the Prometheus data source the alert rules query")):
    """Create or update the Ferry folder, its dashboards and its alert rules in Grafana."""
    _need_extra()
    from grafana_client.client import GrafanaException

    from dashboards.push import push

    try:
        done = push(url, token, datasource_uid)
    except GrafanaException as e:
        typer.echo(f"Grafana at {url} refused: {e}", err=True)
        raise typer.Exit(1)
    except OSError as e:
        typer.echo(f"cannot reach Grafana at {url}: {e}", err=True)
        raise typer.Exit(1)
    typer.echo(f"folder {done.folder_uid}: dashboards {', '.join(done.dashboards)}; "
               f"alert rule groups {', '.join(done.rule_groups)}")


@dashboards_app.command("preview")
def preview_cmd(prometheus: str = typer.Option("http://127.0.0.1:9090", "--prometheus",
                                               help="the Prometheus server that scrapes Ferry"),
                out: Path = typer.Option(Path("ferry-dashboards"), "--out", help="folder for the HTML pages"),
                dashboard: Optional[List[str]] = typer.Option(None, "--dashboard", help="a dashboard uid (all if "
                                                              "not given; repeat for several)"),
                minutes: float = typer.Option(30, "--minutes", help="time range: the last N minutes"),
                rate_interval: str = typer.Option("1m", "--rate-interval", help="value of $__rate_interval "
                                                  "(at least 4 scrape intervals)"),
                var: Optional[List[str]] = typer.Option(None, "--var", help="NAME=REGEX for a dashboard variable "
                                                        "(default .*, everything)"),
                screenshot: bool = typer.Option(False, "--screenshot", help="also a PNG of each page, taken by "
                                                "headless Chromium")):
    """Draw each dashboard's panels from Prometheus into static HTML (plotly); fail if a panel has no data."""
    _need_extra()
    import httpx

    from dashboards.preview import render

    variables = {}
    for v in var or []:
        name, sep, value = v.partition("=")
        if not sep:
            typer.echo(f"--var {v!r}: expected NAME=REGEX", err=True)
            raise typer.Exit(2)
        variables[name] = value
    try:
        previews = render(prometheus, out, dashboard, minutes, rate_interval, variables, screenshot)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2)
    except httpx.HTTPError as e:
        typer.echo(f"cannot query Prometheus at {prometheus}: {e}", err=True)
        raise typer.Exit(2)
    empty = 0
    for p in previews:
        typer.echo(f"{p.path}: {len(p.panels) - len(p.empty)}/{len(p.panels)} panels with data"
                   + (f"; no data: {', '.join(p.empty)}" if p.empty else ""))
        empty += len(p.empty)
    if empty:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(dashboards_app, name="dashboards")
