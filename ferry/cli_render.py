"""`ferry render ...`: what other tools deploy, rendered from ferry.yaml (one source of truth)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import typer

from serving.spec import ServerSpec

render = typer.Typer(help="Render deployment documents from ferry.yaml.", no_args_is_help=True)

LOOPBACK = ("127.", "localhost", "::1")
CONFIGMAP_BUDGET = 900 * 1024  # a ConfigMap holds 1 MiB in all, base64 makes files 4/3 larger


@render.command("serve-config")
def serve_config_cmd(
        file: Path = typer.Option(Path("ferry.yaml"), "-f", "--file", help="the deploy file"),
        base_dir: str = typer.Option(None, "--base-dir", help=(
            "where ferry.yaml's relative paths resolve on the Ray cluster (default: its folder here); "
            "in the helm chart, its baseDir value (/srv/ferry)"))):
    """Print the Ray Serve config (`serve deploy`, KubeRay serveConfigV2) that runs this deploy file."""
    import yaml

    from ferry.app import serve_config
    from ferry.cli_serving import _load

    cfg = _load(file)
    doc = yaml.safe_load(file.read_text()) or {}
    out = serve_config(doc, base_dir or str(file.resolve().parent), cfg)
    sys.stdout.write(yaml.safe_dump(out, sort_keys=False))


@render.command("helm-values")
def helm_values_cmd(file: Path = typer.Option(Path("ferry.yaml"), "-f", "--file", help="the deploy file")):
    """Print values for the helm chart (helm/ferry) that deploy this ferry.yaml: its `ferry` section, and the
    files it names by relative paths (models, baselines) as `files`."""
    import yaml

    from ferry.cli_serving import _load, console

    _load(file)  # validated first: errors name the field
    doc = yaml.safe_load(file.read_text()) or {}
    try:
        values, notes = helm_values(doc, file.resolve().parent)
    except ValueError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from None
    for note in notes:
        console.print(note)
    sys.stdout.write(yaml.safe_dump(values, sort_keys=False))


def helm_values(doc: dict, base: Path) -> tuple[dict, list[str]]:
    """The chart values for the validated ferry.yaml `doc` in folder `base`, and notes for the user.

    The server listens on 0.0.0.0 (a pod's proxies must be reachable by the Service); a token in the file moves
    to `auth.token` (the chart keeps it in a Secret); monitoring schedules get the shared storage volume they
    read captures from; local files named by relative paths travel as `files`."""
    doc = {**doc, "server": dict(doc.get("server") or {})}
    values: dict = {"ferry": doc}
    notes = []
    host = doc["server"].get("host", ServerSpec.model_fields["host"].default)
    if str(host).startswith(LOOPBACK):
        doc["server"]["host"] = "0.0.0.0"
        notes.append(f"server.host {host} -> 0.0.0.0: in a pod, Ray Serve's proxies listen on the pod's address")
    token = doc["server"].pop("auth_token", None)
    if token:
        values["auth"] = {"token": token}
        notes.append("server.auth_token -> auth.token (the chart keeps it in a Secret): this output holds the token")
    if doc.get("monitoring_schedules"):
        values["storage"] = {"enabled": True}
        notes.append("monitoring_schedules read what the gateway captures: storage.enabled (a ReadWriteMany volume "
                     "shared by the pods; set storage.storageClassName, or storage.accessModes=[ReadWriteOnce] "
                     "on a one-node cluster)")
    files = _local_files(doc, base, notes)
    size = sum(len(b) for b in files.values())
    if size > CONFIGMAP_BUDGET:
        largest = sorted(files.items(), key=lambda item: -len(item[1]))[:3]
        biggest = ", ".join(f"{p} ({len(b) // 1024} KiB)" for p, b in largest)
        raise ValueError(f"the files ferry.yaml names take {size // 1024} KiB, more than a ConfigMap holds "
                         f"({CONFIGMAP_BUDGET // 1024} KiB): {biggest}. Put them on the chart's storage volume "
                         f"or behind a URI (s3://...) and name them so in ferry.yaml")
    if files:
        values["files"] = {p: base64.b64encode(b).decode() for p, b in sorted(files.items())}
    return values, notes


def _local_files(doc: dict, base: Path, notes: list[str]) -> dict[str, bytes]:
    """Files that ferry.yaml reads by a relative path (model artifacts, baselines, pipeline steps' modules), by
    that path."""
    paths = [m.get("path") for m in doc.get("models") or []]
    for s in doc.get("monitoring_schedules") or []:
        paths += [s.get("baseline"), s.get("model")]
    paths += _step_modules(doc, base)
    out: dict[str, bytes] = {}
    for rel in paths:
        if not rel or "://" in rel or Path(rel).is_absolute():
            continue  # URIs and absolute paths are read as they are on the cluster
        p = (base / rel).resolve()
        if not p.is_relative_to(base):
            raise ValueError(f"{rel} is outside ferry.yaml's folder: on the cluster relative paths resolve below "
                             f"the chart's baseDir; move it into the folder or name it by a URI")
        if not p.exists():
            notes.append(f"{rel} does not exist here: it must be on the chart's storage volume (baseDir/{rel})")
        for f in sorted(p.rglob("*")) if p.is_dir() else [p] if p.is_file() else []:
            if f.is_file() and "__pycache__" not in f.parts:
                out[f.relative_to(base).as_posix()] = f.read_bytes()
    return out


def _step_modules(doc: dict, base: Path) -> list[str]:
    """The module (a .py file, or a package's folder) of each Python pipeline step, relative to ferry.yaml."""
    found = []
    for ep in doc.get("endpoints") or []:
        for v in ep.get("variants") or []:
            for step in v.get("pipeline") or []:
                if step.get("python"):
                    folder = Path(step.get("path") or ".")
                    top = step["python"].split(":")[0].split(".")[0]
                    found.append((folder / f"{top}.py" if (base / folder / f"{top}.py").is_file()
                                  else folder / top).as_posix())
    return found


def register(app: typer.Typer) -> None:
    app.add_typer(render, name="render")
