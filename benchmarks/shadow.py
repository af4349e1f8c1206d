"""What a shadow variant costs the callers of its endpoint: caller latency and throughput, with and without a
shadow at 100 %, side by side in the same process.

    python -m benchmarks.shadow [--requests 3000] [--concurrency 1,8]

One gateway (serving.gateway.Gateway, in-process: no Ray, no sockets, as benchmarks.serving's handler_cost)
serves endpoints of the same model with and without a shadow of that model sampled at 100 % (its default queue
of 100 copies); `C` callers on the gateway's event loop (what one replica sees) each send requests back to back;
each request's latency is taken from the call to its answer, and the copies the shadow dropped are counted
(sustained load beyond what the replica can also spend on its shadow ends in drops, not in slower callers).
Each point starts with the shadow's queue empty. Two models: the demo's gradient-boosted trees (tens of microseconds) and
benchmarks.serving's wide MLP (about 1 ms). The cases are interleaved in rounds. Writes
benchmarks/results/shadow.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.serving import MLP_WIDTH, RESULTS, _request, wide_mlp

CASES = {"gbm": ("credit-gbm", False), "gbm+shadow": ("credit-gbm", True),
         "mlp": ("mlp", False), "mlp+shadow": ("mlp", True)}


def _doc(demo_dir: Path) -> dict:
    from ferry.demo import demo_config

    doc = demo_config(pipelines=False, ab=False)
    doc["models"].append({"name": "mlp", "path": str(demo_dir / "mlp.onnx")})
    doc["endpoints"] = [
        {"name": name.replace("+", "-"), "variants": [{"model": model}],
         **({"shadow_variants": [{"name": "S", "model": model, "sampling_percentage": 100}]} if shadow else {})}
        for name, (model, shadow) in CASES.items()]
    doc.pop("feature_groups", None)
    doc.pop("monitoring_schedules", None)
    return doc


async def _callers(gateway, path: str, body: bytes, n: int, concurrency: int) -> dict:
    latencies: list[float] = []

    async def caller(count: int) -> None:
        for _ in range(count):
            start = time.perf_counter()
            resp = await gateway(_request(path, body))
            latencies.append(time.perf_counter() - start)
            assert resp.status_code == 200, resp.body

    start = time.perf_counter()
    await asyncio.gather(*(caller(n // concurrency) for _ in range(concurrency)))
    wall = time.perf_counter() - start
    latencies.sort()
    return {"p50_us": latencies[len(latencies) // 2] * 1e6, "p99_us": latencies[int(len(latencies) * 0.99)] * 1e6,
            "per_s": len(latencies) / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from ferry.config import parse_config
    from ferry.demo import make_credit_data, model_matrix, write_demo
    from serving.gateway import Gateway

    demo_dir = Path(tempfile.mkdtemp(prefix="ferry-bench-shadow-"))
    write_demo(demo_dir, n_rows=2000)
    wide_mlp(demo_dir / "mlp.onnx")
    cfg = parse_config(_doc(demo_dir), base=demo_dir, environ={})
    models = {m.name: m for m in cfg.models}
    gbm_row = ",".join(f"{v:.9g}" for v in model_matrix(make_credit_data(10, seed=99))[0]).encode()
    mlp_row = ",".join(f"{v:.6g}" for v in np.random.default_rng(1).normal(size=MLP_WIDTH)).encode()

    async def run() -> dict:
        gateway = Gateway.func_or_class(cfg.endpoints, models, cfg.server, {})
        out: dict[str, dict[str, list[dict]]] = {}
        for _ in range(args.rounds):
            for c in (int(x) for x in args.concurrency.split(",")):
                for name, (model, _) in CASES.items():
                    body = gbm_row if model == "credit-gbm" else mlp_row
                    path = f"/endpoints/{name.replace('+', '-')}/invocations"
                    shadows = gateway.plane.endpoints[name.replace("+", "-")].shadows
                    await _callers(gateway, path, body, 200, c)  # warm-up
                    while any(sh._queue for sh in shadows):  # the shadow's queue drains before the point
                        await asyncio.sleep(0.01)
                    dropped = sum(sh.stats.dropped for sh in shadows)
                    point = await _callers(gateway, path, body, args.requests, c)
                    point["dropped_share"] = (sum(sh.stats.dropped for sh in shadows) - dropped) / args.requests
                    out.setdefault(f"c={c}", {}).setdefault(name, []).append(point)
                    while any(sh._queue for sh in shadows):
                        await asyncio.sleep(0.01)
        return {"points": {c: {name: {k: statistics.median(p[k] for p in pts) for k in pts[0]}
                               for name, pts in cases.items()} for c, cases in out.items()}}

    result = asyncio.run(run())
    lines = ["| callers | model | p50 us | p50 with shadow | p99 us | p99 with shadow | req/s | req/s with shadow "
             "| copies dropped |", "|---|---|---|---|---|---|---|---|---|"]
    for c, cases in result["points"].items():
        for model in ("gbm", "mlp"):
            a, b = cases[model], cases[f"{model}+shadow"]
            lines.append(f"| {c.removeprefix('c=')} | {model} | {a['p50_us']:.0f} | {b['p50_us']:.0f} | {a['p99_us']:.0f} "
                         f"| {b['p99_us']:.0f} | {a['per_s']:.0f} | {b['per_s']:.0f} | {100 * b['dropped_share']:.0f} % |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shadow.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "requests_per_point": args.requests, "rounds": args.rounds, **result, "table": table}, indent=2))


if __name__ == "__main__":
    main()
