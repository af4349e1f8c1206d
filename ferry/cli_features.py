"""`ferry` commands for features (filled in by its issue)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to the main app."""
