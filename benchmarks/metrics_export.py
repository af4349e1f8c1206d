"""How every gateway replica's series reach Prometheus, by per-request cost: the mechanisms side by side.

    python -m benchmarks.metrics_export [--requests 20000]

Ray Serve replicas are separate processes, so a replica's in-process counters are not enough. Each mechanism
below records one successful request's series (the request counter, request and model latency, batch size,
labelled as serving.metrics labels them) inside Ferry's real request handler, timed as benchmarks.serving's
`handler_cost` times it (in-process, no sockets), beside the bare handler and Ferry's handler as it is, in
interleaved rounds in the same process:

- plain: serving.metrics as it is (plain Python numbers, one process only);
- hub: plain, plus serving.metrics_hub's Reporter pushing a snapshot to a real hub actor every second;
- prometheus_client: labelled Counter/Histogram children (one process only; the reference);
- multiprocess: the same in prometheus_client's multiprocess mode (mmap files, one node only);
- ray.util.metrics: Ray's metrics export (sent to the node's metrics agent).

Each mechanism runs in its own process (multiprocess mode is chosen at import time). Writes
benchmarks/results/metrics_export.json (with the table docs/observability.md shows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.serving import BareHandler, RESULTS, _request, _time_handler, ferry_doc
from serving.metrics import LATENCY_BUCKETS

MECHANISMS = ("plain", "hub", "prometheus_client", "multiprocess", "ray.util.metrics")
_EVP = ("endpoint", "variant", "protocol")


def _prometheus_client_metrics(metrics_cls):
    from prometheus_client import Counter, Histogram

    requests = Counter("bench_invocations", "", [*_EVP, "code"])
    latency = Histogram("bench_request_latency_seconds", "", _EVP, buckets=LATENCY_BUCKETS)
    model = Histogram("bench_model_latency_seconds", "", ["endpoint", "variant"], buckets=LATENCY_BUCKETS)
    batch = Histogram("bench_batch_size", "", ["endpoint", "variant"], buckets=(1, 2, 4, 8, 16, 32, 64, 128))

    class Metrics(metrics_cls):
        def succeeded(self, endpoint, variant, protocol, seconds, result):
            requests.labels(endpoint, variant, protocol, "200").inc()
            latency.labels(endpoint, variant, protocol).observe(seconds)
            if result.model_seconds:
                model.labels(endpoint, variant).observe(result.model_seconds)
                batch.labels(endpoint, variant).observe(result.batch_size)

    return Metrics()


def _ray_metrics(metrics_cls):
    from ray.util.metrics import Counter, Histogram

    requests = Counter("bench_invocations", "", tag_keys=(*_EVP, "code"))
    latency = Histogram("bench_request_latency_seconds", "", boundaries=list(LATENCY_BUCKETS), tag_keys=_EVP)
    model = Histogram("bench_model_latency_seconds", "", boundaries=list(LATENCY_BUCKETS), tag_keys=("endpoint", "variant"))
    batch = Histogram("bench_batch_size", "", boundaries=[1, 2, 4, 8, 16, 32, 64, 128],
                      tag_keys=("endpoint", "variant"))

    class Metrics(metrics_cls):
        def succeeded(self, endpoint, variant, protocol, seconds, result):
            requests.inc(1, {"endpoint": endpoint, "variant": variant, "protocol": protocol, "code": "200"})
            latency.observe(seconds, {"endpoint": endpoint, "variant": variant, "protocol": protocol})
            if result.model_seconds:
                model.observe(result.model_seconds, {"endpoint": endpoint, "variant": variant})
                batch.observe(result.batch_size, {"endpoint": endpoint, "variant": variant})

    return Metrics()


async def _timed(handler, path: str, body: bytes, n: int) -> float:
    """Seconds per request, yielding to the event loop every 100 requests as a serving loop does between
    requests (the hub's push task runs then)."""
    await _time_handler(handler, path, body, 100)  # warm-up
    start = time.perf_counter()
    for i in range(n):
        resp = await handler(_request(path, body))
        if i % 100 == 0:
            await asyncio.sleep(0)
    took = time.perf_counter() - start
    assert resp.status_code == 200, resp.body
    return took / n


def measure(mechanism: str, n: int, rounds: int = 5) -> dict:
    """Microseconds per request of the bare handler, of Ferry's handler as it is (plain), and of Ferry's handler
    recording with `mechanism`: each timed in `rounds` interleaved rounds of n / rounds requests, the median
    round kept (other work on the machine moves single rounds)."""
    import ray

    from ferry.config import parse_config
    from ferry.demo import make_credit_data, model_matrix, write_demo
    from serving.gateway import Gateway
    from serving.metrics import ServingMetrics

    demo_dir = Path(tempfile.mkdtemp(prefix="ferry-bench-metrics-"))
    write_demo(demo_dir)
    cfg = parse_config(ferry_doc(demo_dir, 8080, 9000, "python"), base=demo_dir, environ={})
    ep, models = next(e for e in cfg.endpoints if e.name == "default"), {m.name: m for m in cfg.models}
    handlers = {"bare": BareHandler(str(demo_dir / "model.onnx"), 8),
                "plain": Gateway.func_or_class([ep], models, cfg.server, {})}
    if mechanism in ("hub", "ray.util.metrics"):
        ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    if mechanism != "plain":
        handlers[mechanism] = gateway = Gateway.func_or_class([ep], models, cfg.server, {})
        if mechanism in ("prometheus_client", "multiprocess"):
            gateway.plane.metrics = _prometheus_client_metrics(ServingMetrics)
        elif mechanism == "ray.util.metrics":
            gateway.plane.metrics = _ray_metrics(ServingMetrics)
    row = model_matrix(make_credit_data(10, seed=99))[0]
    body = ",".join(f"{v:.9g}" for v in row).encode()
    paths = {"bare": "/"}

    async def run():
        reporter = None
        if mechanism == "hub":  # the plain numbers, pushed to a real hub actor every second from the loop
            from serving.metrics_hub import Reporter, local_families

            registry = handlers["hub"].plane.metrics.registry
            reporter = Reporter("bench-metrics", "replica-1", lambda: local_families(registry))
        times = {name: [] for name in handlers}
        for _ in range(rounds):
            for name, handler in handlers.items():
                path = paths.get(name, "/endpoints/default/invocations")
                times[name].append(await _timed(handler, path, body, n // rounds) * 1e6)
        out = {f"{name}_us": statistics.median(t) for name, t in times.items()}
        if reporter is not None:
            start = time.perf_counter()
            await reporter.exposition()  # one merged scrape through the hub
            out["hub_scrape_ms"] = (time.perf_counter() - start) * 1e3
            start = time.perf_counter()
            reporter.hub.push.remote(reporter.replica, reporter.families())  # what the loop does once a second
            out["hub_push_ms"] = (time.perf_counter() - start) * 1e3
            reporter.stop()
        return out

    out = asyncio.run(run())
    from serving.dataplane import ModelResult

    result = ModelResult("v1", model_seconds=0.0002)
    for name, handler in handlers.items():
        if name != "bare":  # the recording alone: what the mechanism adds to each request
            succeeded = handler.plane.metrics.succeeded
            start = time.perf_counter()
            for _ in range(n):
                succeeded("default", "v1", "sagemaker", 0.0004, result)
            out[f"{name}_record_us"] = (time.perf_counter() - start) / n * 1e6
    if ray.is_initialized():
        ray.shutdown()
    out["ratio"] = out[f"{mechanism}_us"] / out["bare_us"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--mechanism", choices=MECHANISMS, help="measure one mechanism in this process (internal)")
    args = ap.parse_args()
    if args.mechanism:
        print(json.dumps(measure(args.mechanism, args.requests)))
        return
    rows = {}
    for mechanism in MECHANISMS:
        env = dict(os.environ)
        if mechanism == "multiprocess":
            env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="ferry-bench-multiproc-")
        out = subprocess.run([sys.executable, "-m", "benchmarks.metrics_export", "--mechanism", mechanism,
                              "--requests", str(args.requests)], env=env, check=True, capture_output=True, text=True)
        rows[mechanism] = json.loads(out.stdout.strip().splitlines()[-1])
        r = rows[mechanism]
        print(f"{mechanism:18} bare {r['bare_us']:6.1f} us  plain {r['plain_us']:6.1f} us  "
              f"{mechanism} {r[f'{mechanism}_us']:6.1f} us  ratio to bare {r['ratio']:.2f}; recording alone: "
              f"{r[f'{mechanism}_record_us']:.2f} us", flush=True)
    table = markdown(rows)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "metrics_export.json").write_text(json.dumps({"requests": args.requests, "us_per_request": rows,
                                                             "table": table}, indent=2))


def markdown(rows: dict) -> str:
    lines = ["| mechanism | recording one request | Ferry's handler | bare handler | Ferry / bare |",
             "|---|---|---|---|---|"]
    for mechanism, r in rows.items():
        lines.append(f"| {mechanism} | {r[f'{mechanism}_record_us']:.1f} us | {r[f'{mechanism}_us']:.1f} us | "
                     f"{r['bare_us']:.1f} us | {r['ratio']:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
