"""`ferry up|status|invoke|demo`."""

import typer


def register(app: typer.Typer) -> None:
    """Add the serving commands to the main app."""
