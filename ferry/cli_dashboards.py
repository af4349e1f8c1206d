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


def register(app: typer.Typer) -> None:
    app.add_typer(dashboards_app, name="dashboards")
