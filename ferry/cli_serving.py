"""`ferry up | status | invoke | demo | validate`: deploy, inspect and call endpoints."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ferry.app import feature_api_config
from ferry.config import ConfigError, DeployFile, load_config

console = Console(stderr=True)
RAY_TOKEN = Path.home() / ".ray" / "auth_token"


def _load(file: Path) -> DeployFile:
    try:
        return load_config(file)
    except ConfigError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from None


def serve_until_interrupted(cfg: DeployFile, address: str | None, base_dir: Path) -> None:
    """Start or join Ray, deploy the endpoints, print the URLs, block until Ctrl-C, shut down."""
    import ray

    from serving import deploy
    from serving.status import DeployError

    if not cfg.endpoints:
        console.print("[red]the deploy file declares no endpoints[/red]")
        raise typer.Exit(2)
    deploy.start_ray(cfg.server, address)
    try:
        deploy.deploy(cfg.models, cfg.endpoints, cfg.server,
                      kafka_bootstrap=cfg.kafka.bootstrap_servers if cfg.kafka else None,
                      schedules=cfg.monitoring_schedules, features=feature_api_config(cfg, base_dir))
    except DeployError as err:
        console.print(f"[red]deploy failed: {err}[/red]")
        deploy.shutdown()
        raise typer.Exit(1) from None
    base = f"http://{cfg.server.host}:{cfg.server.http_port}"
    for ep in cfg.endpoints:
        console.print(f"[green]endpoint {ep.name}[/green]  SageMaker: POST {base}/endpoints/{ep.name}/invocations"
                      f"   KServe V2: POST {base}/v2/models/{ep.name}/infer")
    console.print(f"KServe V2 gRPC: {cfg.server.host}:{cfg.server.grpc_port}   health: GET {base}/ping   "
                  f"metrics: GET {base}/metrics")
    console.print(f"Ray address: {ray.get_runtime_context().gcs_address}   (Ctrl-C stops Ferry)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    console.print("shutting down")
    deploy.shutdown()


def register(app: typer.Typer) -> None:
    """Add the serving commands to the main app."""

    @app.command()
    def up(file: Path = typer.Option(Path("ferry.yaml"), "-f", "--file", help="the deploy file"),
           address: str = typer.Option(None, "--address", help="join this Ray cluster instead of starting one")):
        """Deploy every endpoint of the deploy file on Ray Serve and serve until Ctrl-C."""
        serve_until_interrupted(_load(file), address, file.resolve().parent)

    @app.command()
    def validate(file: Path = typer.Option(Path("ferry.yaml"), "-f", "--file")):
        """Check a deploy file (with FERRY_* environment overrides) without starting anything."""
        cfg = _load(file)
        console.print(f"[green]ok[/green]: {len(cfg.models)} model(s), {len(cfg.endpoints)} endpoint(s)")

    @app.command()
    def status(address: str = typer.Option("auto", "--address", help="the Ray cluster Ferry runs on")):
        """Show endpoints, variants, replicas and health of a running Ferry."""
        if address != "auto" and "RAY_AUTH_MODE" not in os.environ and RAY_TOKEN.exists():
            os.environ["RAY_AUTH_MODE"] = "token"  # Ray finds its token for "auto" only; say it for an address
        import ray

        from serving.deploy import APP_NAME
        from serving.status import app_summary

        try:
            ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError) as err:
            console.print(f"[red]no running Ferry found at Ray address {address!r}: {err}[/red]")
            raise typer.Exit(1) from None
        summary = app_summary(APP_NAME)
        if summary is None:
            console.print("[red]Ferry is not deployed on this Ray cluster[/red]")
            raise typer.Exit(1)
        table = Table(title=f"ferry: {summary['status']}")
        for col in ("endpoint", "variant", "status", "replicas", "message"):
            table.add_column(col)
        for name, d in sorted(summary["deployments"].items()):
            endpoint, _, variant = name.partition(".")
            replicas = ", ".join(f"{k}={v}" for k, v in d["replicas"].items()) or "0"
            table.add_row(endpoint if variant else "(gateway)", variant or "-", d["status"], replicas, d["message"])
        Console().print(table)

    @app.command()
    def invoke(endpoint: str = typer.Argument(..., help="endpoint name"),
               body: str = typer.Option(..., "--body", help="a file with the request body, or - for stdin"),
               content_type: str = typer.Option("text/csv", "--content-type"),
               accept: str = typer.Option(None, "--accept"),
               target_variant: str = typer.Option(None, "--target-variant"),
               url: str = typer.Option("http://127.0.0.1:8080", "--url", help="Ferry's HTTP address"),
               token: str = typer.Option(None, "--token", envvar="FERRY_TOKEN", help="data-plane bearer token")):
        """Call an endpoint through the SageMaker runtime route and print the response."""
        import httpx

        data = sys.stdin.buffer.read() if body == "-" else Path(body).read_bytes()
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        if target_variant:
            headers["X-Amzn-SageMaker-Target-Variant"] = target_variant
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = httpx.post(f"{url.rstrip('/')}/endpoints/{endpoint}/invocations", content=data,
                              headers=headers, timeout=70)
        except httpx.HTTPError as err:
            console.print(f"[red]cannot reach Ferry at {url}: {err}[/red]")
            raise typer.Exit(1) from None
        if resp.status_code >= 400:
            console.print(f"[red]{resp.status_code} {resp.headers.get('x-amzn-errortype', '')}[/red] {resp.text}")
            raise typer.Exit(1)
        console.print(f"variant: {resp.headers.get('x-amzn-invoked-production-variant')}")
        sys.stdout.buffer.write(resp.content)

    @app.command()
    def demo(out: Path = typer.Option(Path("ferry-demo"), "--out", help="where to write the demo"),
             serve: bool = typer.Option(True, "--serve/--no-serve", help="serve the demo endpoint afterwards")):
        """Write a seeded credit-risk dataset, an ONNX model and ferry.yaml; then serve the endpoint."""
        from ferry.demo import write_demo

        path = write_demo(out)
        console.print(f"demo written to {out}/: train.csv test.csv test_features.csv model.onnx ferry.yaml")
        if serve:
            console.print(f"try, from another shell:  ferry invoke credit-risk --body {out}/test_features.csv")
            serve_until_interrupted(_load(path), None, path.resolve().parent)
