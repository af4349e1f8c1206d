"""`ferry render ...`: what other tools deploy, rendered from ferry.yaml (one source of truth)."""

from __future__ import annotations

from pathlib import Path

import typer

render = typer.Typer(help="Render deployment documents from ferry.yaml.", no_args_is_help=True)


@render.command("serve-config")
def serve_config_cmd(
        file: Path = typer.Option(Path("ferry.yaml"), "-f", "--file", help="the deploy file"),
        base_dir: str = typer.Option(None, "--base-dir", help=(
            "where ferry.yaml's relative paths resolve on the Ray cluster (default: its folder here); "
            "in the helm chart, the folder the ConfigMap is mounted at"))):
    """Print the Ray Serve config (`serve deploy`, KubeRay serveConfigV2) that runs this deploy file."""
    import sys

    import yaml

    from ferry.app import serve_config
    from ferry.cli_serving import _load

    cfg = _load(file)
    doc = yaml.safe_load(file.read_text()) or {}
    out = serve_config(doc, base_dir or str(file.resolve().parent), cfg)
    sys.stdout.write(yaml.safe_dump(out, sort_keys=False))


def register(app: typer.Typer) -> None:
    app.add_typer(render, name="render")
