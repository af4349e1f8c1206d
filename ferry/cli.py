"""The `ferry` command line: up, status, invoke, demo, and the Clarify, monitor, feature-store and dashboards
commands."""

from __future__ import annotations

import logging

import typer

from ferry import cli_clarify, cli_dashboards, cli_features, cli_monitor, cli_render, cli_serving, cli_transform

app = typer.Typer(help="Ferry: self-hosted SageMaker-style hosting, monitoring, Clarify and feature store on Ray Serve.",
                  no_args_is_help=True, pretty_exceptions_enable=False)

cli_serving.register(app)
cli_clarify.register(app)
cli_monitor.register(app)
cli_features.register(app)
cli_render.register(app)
cli_dashboards.register(app)
cli_transform.register(app)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app()


if __name__ == "__main__":
    main()
