"""`ferry up | status | invoke | demo | validate`: deploy, inspect and call endpoints."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NoReturn

import typer
import yaml
from rich.console import Console
from rich.table import Table

from ferry.app import serve_config
from ferry.config import ConfigError, DeployFile, load_config, override_vars, parse_config

if TYPE_CHECKING:
    from serving.control.state import RolloutRequest

console = Console(stderr=True, soft_wrap=True)  # soft wrap: a URL is never split, terminal or not
RAY_TOKEN = Path.home() / ".ray" / "auth_token"
VERBOSE = typer.Option(False, "--verbose", help="show Ray's and Ray Serve's own log lines")
DEBUG = typer.Option(False, "--debug", help="show the traceback when Ferry cannot start")


def _rollout_default(field: str):
    """A rollout option's default: the control API's (serving.control.state), not re-stated here."""
    from serving.control.state import Alarms, RolloutRequest

    model = RolloutRequest if field in RolloutRequest.model_fields else Alarms
    return model.model_fields[field].default


# the options `ferry rollout` and `ferry shadow promote` share; checked by RolloutRequest (a bad one is named)
STRATEGY = typer.Option("canary", "--strategy", help="all-at-once, canary or linear")
CANARY_PERCENT = typer.Option(_rollout_default("canary_percent"), "--canary-percent", help="canary: green's first share")
LINEAR_STEP = typer.Option(_rollout_default("linear_step"), "--linear-step", help="linear: percent per step")
WAIT_INTERVAL = typer.Option(_rollout_default("wait_interval_s"), "--wait-interval", help="bake seconds per step")
TERMINATION_WAIT = typer.Option(_rollout_default("termination_wait_s"), "--termination-wait",
                                help="seconds blue stays idle before it is removed")
MAX_DURATION = typer.Option(_rollout_default("max_duration_s"), "--max-duration")
MAX_ERROR_RATE = typer.Option(_rollout_default("max_error_rate"), "--max-error-rate", help="green's 5xx/ModelError share")
WAIT = typer.Option(True, "--wait/--no-wait", help="follow the rollout until it ends")
CONTROL_URL = typer.Option("http://127.0.0.1:8080", "--url", envvar="FERRY_URL")
CONTROL_TOKEN = typer.Option(None, "--token", envvar="FERRY_CONTROL_TOKEN")


def _fail(message: str, code: int = 1) -> NoReturn:
    """One paragraph on stderr, then exit."""
    console.print(message, style="red", markup=False, highlight=False)
    raise typer.Exit(code)


def _load(file: Path) -> DeployFile:
    try:
        return load_config(file)
    except ConfigError as err:
        _fail(str(err), 2)


def _preflight(models: list, server=None, endpoints: list = ()) -> None:
    """The models load and pipeline steps import (and, given the server section, its ports are free), or exit
    with the reasons."""
    from ferry.preflight import PreflightError, check

    try:
        check(models, server, endpoints)
    except PreflightError as err:
        _fail(f"Ferry cannot start: {err}", 2)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def serve_until_interrupted(cfg: DeployFile, address: str | None, file: Path, verbose: bool = False,
                            debug: bool = False, on_ready: Callable[[str], None] | None = None) -> None:
    """Check, start or join Ray, deploy the deploy file `file` (validated as `cfg`) the way `serve deploy`
    would, print the URLs, block until Ctrl-C, shut down.

    `on_ready(base_url)` runs in a background thread once the endpoints answer."""
    from serving import deploy
    from serving.status import DeployError

    if not cfg.endpoints:
        _fail("the deploy file declares no endpoints", 2)
    _preflight(cfg.models, None if address else cfg.server, cfg.endpoints)  # a cluster Ferry joins owns its ports
    try:
        cfg.server.check_control_exposure()
    except ValueError as err:
        _fail(str(err), 2)
    try:
        deploy.start_ray(cfg.server, address, verbose=verbose)
        # On a cluster it joins, the builder runs in the cluster's processes: this shell's overrides go along.
        env = override_vars() if address else None
        deploy.deploy_config(serve_config(yaml.safe_load(file.read_text()) or {}, str(file.resolve().parent), cfg,
                                          env=env))
    except KeyboardInterrupt:
        console.print("interrupted; shutting down")
        _quiet_shutdown(deploy, started_ray=address is None)
        raise typer.Exit(130) from None
    except DeployError as err:
        _quiet_shutdown(deploy, started_ray=address is None)
        _fail(f"deploy failed: {err}")
    except Exception as err:
        _quiet_shutdown(deploy, started_ray=address is None)
        if debug:
            raise
        _fail(f"Ferry could not start: {_first_line(err)}. Run again with --debug for the traceback.")
    import ray

    base = f"http://{cfg.server.host}:{cfg.server.http_port}"
    for ep in cfg.endpoints:
        console.print(f"[green]endpoint {ep.name}[/green]  SageMaker: POST {base}/endpoints/{ep.name}/invocations"
                      f"   KServe V2: POST {base}/v2/models/{ep.name}/infer")
    console.print(f"KServe V2 gRPC: {cfg.server.host}:{cfg.server.grpc_port}   health: GET {base}/ping   "
                  f"metrics: GET {base}/metrics")
    if cfg.monitoring_schedules:
        console.print(f"monitoring: {len(cfg.monitoring_schedules)} schedule(s), "
                      f"executions: GET {base}/monitoring/executions")
    console.print(f"ingress: {deploy.ingress(cfg.server)}   Ray address: {ray.get_runtime_context().gcs_address}   "
                  "(Ctrl-C stops Ferry)")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if on_ready is not None:
        threading.Thread(target=on_ready, args=(base,), name="ferry-on-ready", daemon=True).start()
    stop.wait()
    console.print("shutting down")
    _quiet_shutdown(deploy, started_ray=address is None)


def _quiet_shutdown(deploy, started_ray: bool) -> None:
    """Stop Ferry: on a Ray it started, delete the application (replicas drain, captures flush) and stop Ray,
    which skips Serve's controller shutdown task and the retry warning Ray prints for it; on a cluster it
    joined, shut Serve down. A second Ctrl-C meanwhile is not worth a traceback."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        return
    try:
        if started_ray:
            serve.delete(deploy.APP_NAME)
            ray.shutdown()
        else:
            deploy.shutdown()
    except KeyboardInterrupt:
        ray.shutdown()


def _stdout_console() -> Console:
    """Tables on stdout: the terminal's width, or wide enough not to wrap when piped."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def _demo_traffic(base: str, demo_dir: Path, token: str | None) -> None:
    from ferry.demo_traffic import DRIFT_FACTOR, DRIFT_FEATURE, send_traffic, wait_for_violations

    r = send_traffic(base, demo_dir, token)
    console.print(f"demo traffic: {r.requests} requests, {r.rows} rows (the last {r.drifted_rows} with {DRIFT_FEATURE} "
                  f"x{DRIFT_FACTOR}), {r.failed} failed; ground truth posted for {r.ground_truth} requests")
    console.print(f"waiting for the data-quality schedule (every 30 s): GET {base}/monitoring/executions")
    found = wait_for_violations(base, timeout_s=120, token=token)
    if not (found or {}).get("violations"):
        latest = f"{found['status']} {found.get('failure_reason') or ''}".strip() if found else "none ran"
        console.print(f"monitor: no violation reported within 120 s (latest execution: {latest})", style="yellow",
                      markup=False, highlight=False)
        return
    what = "; ".join(f"{v.get('feature_name')} ({v.get('constraint_check_type')})" for v in found["violations"])
    console.print(f"monitor: {found['status']} on window {found['window_start']} - {found['window_end']}: {what}. "
                  f"Reports: {found['path']}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the serving commands to the main app."""

    @app.command()
    def up(file: Path = typer.Option(Path("ferry.yaml"), "-f", "--file", help="the deploy file"),
           address: str = typer.Option(None, "--address", help="join this Ray cluster instead of starting one"),
           verbose: bool = VERBOSE, debug: bool = DEBUG):
        """Deploy every endpoint of the deploy file on Ray Serve and serve until Ctrl-C."""
        serve_until_interrupted(_load(file), address, file, verbose=verbose, debug=debug)

    @app.command()
    def validate(file: Path = typer.Option(Path("ferry.yaml"), "-f", "--file")):
        """Check a deploy file (with FERRY_* environment overrides) and load its models, without starting Ray."""
        cfg = _load(file)
        _preflight(cfg.models, endpoints=cfg.endpoints)
        console.print(f"[green]ok[/green]: {len(cfg.models)} model(s) load, {len(cfg.endpoints)} endpoint(s), "
                      f"{len(cfg.monitoring_schedules)} monitoring schedule(s)")

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
            _fail(f"no running Ferry found at Ray address {address!r}: {err}")
        summary = app_summary(APP_NAME)
        if summary is None:
            _fail("Ferry is not deployed on this Ray cluster")
        from ray import serve

        async def ask() -> tuple[dict, dict]:  # Ray's throughput settings bind handles to an event loop
            return (await serve.get_deployment_handle("gateway", APP_NAME).describe.remote(),
                    await serve.get_deployment_handle("control", APP_NAME).traffic.remote())

        layout, traffic = asyncio.run(asyncio.wait_for(ask(), 30))
        deployments = summary["deployments"]
        table = Table(title=f"ferry: {summary['status']}")
        for col in ("endpoint", "variant", "weight", "runs in", "status", "replicas", "message"):
            table.add_column(col)

        def row(endpoint: str, variant: str, weight: str, runs: str, name: str) -> None:
            d = deployments.get(name, {"status": "?", "replicas": {}, "message": ""})
            replicas = ", ".join(f"{k}={v}" for k, v in d["replicas"].items()) or "0"
            table.add_row(endpoint, variant, weight, runs, d["status"], replicas, d["message"])

        row("(gateway)", "-", "-", "gateway", "gateway")
        for endpoint, variants in sorted(layout.items()):
            for v in variants:
                runs = v["runs"]
                weight = v["weight"] if isinstance(v["weight"], str) else f"{v['weight']:g}"
                row(endpoint, v["variant"], weight, runs, "gateway" if runs == "in gateway" else runs)
                for step in v.get("steps", ()):  # a pipeline's steps
                    runs = step["runs"]
                    row("", f"  step {step['name']}", "-", runs, "gateway" if runs == "in gateway" else runs)
        _stdout_console().print(table)
        for endpoint, r in sorted(traffic["rollouts"].items()):
            step = f"step {r['step'] + 1}/{len(r['shares'])}" if r["status"] == "running" else r["status"]
            reason = f": {r['reason']}" if r["reason"] else ""
            _stdout_console().print(f"rollout {endpoint}: {r['strategy']} to {sorted(r['green'])}, {step}{reason}")

    @app.command()
    def weights(endpoint: str = typer.Argument(..., help="endpoint name"),
                assignments: list[str] = typer.Argument(..., help="VARIANT=WEIGHT, e.g. v1=90 v2=10"),
                url: str = typer.Option("http://127.0.0.1:8080", "--url", envvar="FERRY_URL", help="Ferry's HTTP address"),
                token: str = typer.Option(None, "--token", envvar="FERRY_CONTROL_TOKEN", help="control API token")):
        """Change an endpoint's variant weights live (no replica restarts, no failed requests)."""
        import httpx

        weights = {}
        for a in assignments:
            name, sep, value = a.partition("=")
            try:
                weights[name] = float(value)
            except ValueError:
                sep = ""
            if not sep or not name:
                _fail(f"{a!r} is not VARIANT=WEIGHT", 2)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = httpx.put(f"{url.rstrip('/')}/control/endpoints/{endpoint}/weights", json={"weights": weights},
                          headers=headers, timeout=70)
        except httpx.HTTPError as err:
            _fail(f"cannot reach Ferry at {url}: {err}")
        if r.status_code >= 400:
            _fail(f"{r.status_code}: {r.json().get('error', r.text) if r.headers.get('content-type', '').startswith('application/json') else r.text}")
        live = r.json()["endpoints"][endpoint]["weights"]
        total = sum(live.values())
        console.print(f"{endpoint}: " + "  ".join(f"{n}={w:g} ({100 * w / total:.0f} %)" for n, w in live.items()))

    shadow = typer.Typer(help="Shadow variants: compare them with production, promote one.", no_args_is_help=True)
    app.add_typer(shadow, name="shadow")

    @shadow.command("report")
    def shadow_report(endpoint: str = typer.Argument(..., help="endpoint name"),
                      url: str = typer.Option("http://127.0.0.1:8080", "--url", envvar="FERRY_URL"),
                      token: str = typer.Option(None, "--token", envvar="FERRY_CONTROL_TOKEN"),
                      as_json: bool = typer.Option(False, "--json", help="print the report as JSON")):
        """Each shadow variant of ENDPOINT against production, over every gateway replica."""
        import json

        import httpx

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = httpx.get(f"{url.rstrip('/')}/control/endpoints/{endpoint}/shadows", headers=headers, timeout=30)
        except httpx.HTTPError as err:
            _fail(f"cannot reach Ferry at {url}: {err}")
        if r.status_code >= 400:
            _fail(f"{r.status_code}: {r.text}")
        doc = r.json()
        if as_json:
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
            return
        table = Table(title=f"{endpoint}: shadows against production")
        for col in ("variant", "requests", "dropped", "error rate", "agreement", "mean |diff|", "p50 ms", "p99 ms"):
            table.add_column(col)

        def fmt(v, scale=1.0, spec="{:.3g}"):
            return "-" if v is None else spec.format(v * scale)

        p = doc["production"]
        table.add_row("(production)", str(p["requests"]), "-", fmt(p["error_rate"], 100, "{:.1f} %"), "-", "-",
                      fmt(p["p50_s"], 1e3), fmt(p["p99_s"], 1e3))
        for name, s in sorted(doc["shadows"].items()):
            table.add_row(name, str(s["copies"]), str(s["dropped"]), fmt(s["error_rate"], 100, "{:.1f} %"),
                          fmt(s["agreement"], 100, "{:.1f} %"), fmt(s["mean_abs_difference"]),
                          fmt(s["p50_s"], 1e3), fmt(s["p99_s"], 1e3))
        _stdout_console().print(table)

    @shadow.command("promote")
    def shadow_promote(endpoint: str = typer.Argument(..., help="endpoint name"),
                       name: str = typer.Argument(..., help="the shadow variant to make production"),
                       file: Path = typer.Option(Path("ferry.yaml"), "-f", "--file", help="the deploy file running"),
                       strategy: str = STRATEGY, canary_percent: float = CANARY_PERCENT,
                       linear_step: float = LINEAR_STEP, wait_interval: float = WAIT_INTERVAL,
                       termination_wait: float = TERMINATION_WAIT, max_duration: float = MAX_DURATION,
                       max_error_rate: float = MAX_ERROR_RATE,
                       wait: bool = WAIT, url: str = CONTROL_URL, token: str = CONTROL_TOKEN):
        """Make shadow NAME of ENDPOINT its production variant through a guarded rollout (the shadow keeps
        its copies until the deploy file drops it); it keeps its placement (in the gateway, or its own deployment)."""
        from serving.control.state import GreenVariant
        from serving.spec import PLACEMENT_FIELDS, VariantSpec

        cfg = _load(file)
        ep = next((e for e in cfg.endpoints if e.name == endpoint), None)
        if ep is None:
            _fail(f"{file} declares no endpoint {endpoint!r}", 2)
        spec = next((s for s in ep.shadow_variants if s.name == name), None)
        if spec is None:
            _fail(f"endpoint {endpoint!r} has no shadow {name!r} (shadows: {[s.name for s in ep.shadow_variants]})", 2)
        model = next(m for m in cfg.models if m.name == spec.model)
        placed = {f: getattr(spec, f) for f in spec.model_fields_set & PLACEMENT_FIELDS}  # as given: in_process
        green = GreenVariant(variant=VariantSpec(name=name, model=model.name, **placed), models={model.name: model})
        request = _rollout_request(green={name: green}, strategy=strategy, canary_percent=canary_percent,
                                   linear_step=linear_step, wait_interval_s=wait_interval,
                                   termination_wait_s=termination_wait, max_duration_s=max_duration,
                                   alarms={"max_error_rate": max_error_rate})
        _run_rollout(endpoint, request, wait, url, token)

    @app.command()
    def rollout(endpoint: str = typer.Argument(..., help="endpoint name"),
                to: Path = typer.Option(..., "--to", help="a deploy file declaring ENDPOINT's new variants (and their "
                                                           "models): the green fleet"),
                strategy: str = STRATEGY, canary_percent: float = CANARY_PERCENT, linear_step: float = LINEAR_STEP,
                wait_interval: float = WAIT_INTERVAL, termination_wait: float = TERMINATION_WAIT,
                max_duration: float = MAX_DURATION, max_error_rate: float = MAX_ERROR_RATE,
                max_p99_ms: float = typer.Option(None, "--max-p99-ms"),
                prometheus_url: str = typer.Option(None, "--prometheus-url"),
                alarm: list[str] = typer.Option([], "--alarm", help="a Prometheus alert name that rolls back (repeat)"),
                drift_baseline: Path = typer.Option(None, "--drift-baseline", help="a data-quality baseline folder: a "
                                                                                   "violation on green's inputs rolls back"),
                bias_baseline: Path = typer.Option(None, "--bias-baseline", help=(
                    "a bias baseline folder (`ferry baseline --type bias` of blue's predictions, the predicted label "
                    "as the label): green's DPPL or DI farther from the ideal rolls back")),
                bias_facet: list[str] = typer.Option([], "--bias-facet", help="the bias alarm's facet: NAME, NAME>T or "
                                                                              "NAME=V1,V2 (repeat for several)"),
                input_columns: str = typer.Option(None, "--input-columns", help=(
                    "comma-separated names of the captured input columns (default: the drift baseline's, else the "
                    "model's feature_names metadata)")),
                wait: bool = WAIT, url: str = CONTROL_URL, token: str = CONTROL_TOKEN):
        """Blue/green: move ENDPOINT's traffic to the variants of --to, baking each step, rolling back on an alarm."""
        from dataclasses import asdict

        from ferry.cli_clarify import parse_facets

        new = _load(to)
        target = next((ep for ep in new.endpoints if ep.name == endpoint), None)
        if target is None:
            _fail(f"{to} declares no endpoint {endpoint!r}", 2)
        from serving.control.state import GreenVariant

        models = {m.name: m for m in new.models}
        green = {v.name: GreenVariant(variant=v, weight=v.initial_weight,
                                      models={n: models[n] for n in {v.model, *(s.model for s in v.pipeline or ())} if n})
                 for v in target.variants}  # any variant: a pipeline, its own deployment (serving.control.green)
        request = _rollout_request(
            green=green, strategy=strategy, canary_percent=canary_percent, linear_step=linear_step,
            wait_interval_s=wait_interval, termination_wait_s=termination_wait, max_duration_s=max_duration,
            alarms={"max_error_rate": max_error_rate, "max_p99_s": max_p99_ms / 1e3 if max_p99_ms else None,
                    "prometheus_url": prometheus_url, "prometheus_alerts": alarm,
                    "drift_baseline": str(drift_baseline.resolve()) if drift_baseline else None,
                    "bias_baseline": str(bias_baseline.resolve()) if bias_baseline else None,
                    "bias_facets": [{k: v for k, v in asdict(f).items() if v is not None}
                                    for f in parse_facets(bias_facet)],
                    "input_columns": [c.strip() for c in input_columns.split(",")] if input_columns else None})
        _run_rollout(endpoint, request, wait, url, token)

    @app.command()
    def invoke(endpoint: str = typer.Argument(..., help="endpoint name"),
               body: str = typer.Option(..., "--body", help="a file with the request body, or - for stdin"),
               content_type: str = typer.Option("text/csv", "--content-type"),
               accept: str = typer.Option(None, "--accept"),
               target_variant: str = typer.Option(None, "--target-variant"),
               url: str = typer.Option("http://127.0.0.1:8080", "--url", envvar="FERRY_URL",
                                       help="Ferry's HTTP address"),
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
            _fail(f"cannot reach Ferry at {url}: {err}")
        if resp.status_code >= 400:
            _fail(f"{resp.status_code} {resp.headers.get('x-amzn-errortype', '')} {resp.text}")
        console.print(f"variant: {resp.headers.get('x-amzn-invoked-production-variant')}")
        sys.stdout.buffer.write(resp.content)

    @app.command()
    def demo(out: Path = typer.Option(Path("ferry-demo"), "--out", help="where to write the demo"),
             serve: bool = typer.Option(True, "--serve/--no-serve", help="serve the demo endpoint afterwards"),
             traffic: bool = typer.Option(False, "--traffic", help=(
                 "once served, send a small built-in load that ends in a drifted segment, and show what the "
                 "monitor finds")),
             verbose: bool = VERBOSE, debug: bool = DEBUG):
        """Write a seeded credit-risk dataset, an ONNX model, a baseline and ferry.yaml; then serve and monitor."""
        from ferry.demo import DEMO_FILES, demo_config, write_demo

        if traffic and not serve:
            _fail("--traffic sends its load to the demo this command serves: drop --no-serve", 2)
        if serve:  # a busy port fails now, not after the demo is written
            _preflight([], parse_config(demo_config(), base=out.resolve()).server)
        path = write_demo(out)
        console.print(f"demo written to {out}/: {' '.join(DEMO_FILES)}")
        if not serve:
            return
        console.print(f"try, from another shell:  ferry invoke credit-risk --body {out}/test_features.csv")
        cfg = _load(path)
        on_ready = (lambda base: _demo_traffic(base, path.parent, cfg.server.auth_token)) if traffic else None
        serve_until_interrupted(cfg, None, path, verbose=verbose, debug=debug, on_ready=on_ready)


def _rollout_request(**fields) -> RolloutRequest:
    """The control API's rollout request, checked here as the server checks it."""
    from pydantic import ValidationError

    from serving.control.state import RolloutRequest

    try:
        return RolloutRequest(**fields)
    except ValidationError as err:
        _fail(f"rollout request: {err}", 2)


def _run_rollout(endpoint: str, request: RolloutRequest, wait: bool, url: str, token: str | None) -> None:
    """Start a rollout through the control API and, with `wait`, follow it to its end (exit 1 if rolled back)."""
    import time

    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = url.rstrip("/")
    try:
        r = httpx.post(f"{base}/control/endpoints/{endpoint}/rollouts", timeout=120,
                       headers={**headers, "content-type": "application/json"},
                       content=request.model_dump_json(exclude_unset=True))  # the fields given: see AddedVariant
    except httpx.HTTPError as err:
        _fail(f"cannot reach Ferry at {url}: {err}")
    if r.status_code >= 400:
        _fail(f"{r.status_code}: {r.json().get('error', r.text)}")
    console.print(f"rollout of {endpoint} to {sorted(request.green)} started ({request.strategy})")
    if not wait:
        return
    shown = 0
    while True:
        time.sleep(1)
        doc = httpx.get(f"{base}/control/endpoints/{endpoint}/rollout", headers=headers, timeout=30).json()["rollout"]
        for line in doc["history"][shown:]:
            console.print(f"  {line}")
        shown = len(doc["history"])
        if doc["status"] != "running":
            break
    if doc["status"] == "rolled_back":
        _fail(f"rolled back: {doc['reason']}")
    console.print(f"[green]rollout of {endpoint} completed[/green]")
