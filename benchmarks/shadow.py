"""What a shadow variant costs the callers of its endpoint: caller latency and throughput without a shadow, with
a shadow in the gateway, and with a shadow on its own deployment, side by side in the same run.

    python -m benchmarks.shadow [--seconds 3] [--rounds 3] [--concurrency 1,8] [--ingress haproxy]

Ferry on real Ray Serve (the default ingress, HAProxy when installed), loaded by wrk over loopback, one CSV row
per request; each endpoint serves one model, without a shadow, and with a shadow of the same model sampled at 100 %
run three ways: on the gateway's event loop (`in_process: true, thread: false`), on a thread of the gateway
(`thread: true`: batches of copies, one onnxruntime call each) and on its own deployment (`in_process: false`:
batches of copies, one DeploymentHandle call each). Two models: the
demo's gradient-boosted trees (tens of microseconds) and benchmarks.serving's wide MLP (about 1 ms). Each
round runs every endpoint at every concurrency one after another (the cases compared are measured seconds
apart); the table shows the median over the rounds, with the share of copies the shadow dropped (its bound of
100 copies) and the copies it answered, read from the control API's shadow report. Writes
benchmarks/results/shadow.json.

On the event loop, a copy holds the loop for one model call between requests: a caller who keeps the replica
busy waits behind it, and under load the shadow gets few turns and drops most copies. On a thread, batches of
copies run beside the loop (onnxruntime releases the GIL); on its own deployment, the gateway pays one
DeploymentHandle call per batch and the model runs in the shadow's replica. The thread is Ferry's default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.loadgen import require_wrk, wrk
from benchmarks.serving import MLP_WIDTH, RESULTS, wide_mlp

PLACES = {"loop": {"in_process": True, "thread": False}, "thread": {"in_process": True, "thread": True},
          "deployment": {"in_process": False}}
CASES = {f"{model}{'+' + place if place else ''}": (path, place)
         for model, path in (("gbm", "credit-gbm"), ("mlp", "mlp")) for place in (None, *PLACES)}


def _name(case: str) -> str:
    return case.replace("+", "-")


def _doc(demo_dir: Path, port: int, grpc_port: int, ingress: str) -> dict:
    from ferry.demo import demo_config

    doc = demo_config(pipelines=False, ab=False)
    doc["server"].update(http_port=port, grpc_port=grpc_port, ingress=ingress, state_dir=str(demo_dir / "control"))
    doc["models"].append({"name": "mlp", "path": str(demo_dir / "mlp.onnx")})
    doc["endpoints"] = [
        {"name": _name(case), "variants": [{"model": model}],
         **({"shadow_variants": [{"name": "S", "model": model, "sampling_percentage": 100, **PLACES[where]}]}
            if where is not None else {})}
        for case, (model, where) in CASES.items()]
    doc.pop("feature_groups", None)
    doc.pop("monitoring_schedules", None)
    return doc


def _shadow_counts(base: str, endpoint: str) -> dict:
    import httpx

    s = httpx.get(f"{base}/control/endpoints/{endpoint}/shadows", timeout=30).json()["shadows"].get("S", {})
    return {"copies": s.get("copies", 0), "dropped": s.get("dropped", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--ingress", default="auto", choices=["auto", "haproxy", "python"])
    args = ap.parse_args()
    from ferry.app import serve_config
    from ferry.config import parse_config
    from ferry.demo import make_credit_data, model_matrix, write_demo
    from serving.deploy import deploy_config, ingress, shutdown, start_ray

    require_wrk()
    demo_dir = Path(tempfile.mkdtemp(prefix="ferry-bench-shadow-"))
    write_demo(demo_dir, n_rows=2000)
    wide_mlp(demo_dir / "mlp.onnx")
    port, grpc_port = 18600, 19600
    doc = _doc(demo_dir, port, grpc_port, args.ingress)
    cfg = parse_config(doc, base=demo_dir, environ={})
    gbm_row = ",".join(f"{v:.9g}" for v in model_matrix(make_credit_data(10, seed=99))[0])
    mlp_row = ",".join(f"{v:.6g}" for v in np.random.default_rng(1).normal(size=MLP_WIDTH))
    base = f"http://127.0.0.1:{port}"
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    points: dict[str, dict[str, list[dict]]] = {}
    start_ray(cfg.server)
    try:
        deploy_config(serve_config(doc, str(demo_dir), cfg), timeout_s=240)
        for case, (model, _) in CASES.items():  # warm up
            wrk(f"{base}/endpoints/{_name(case)}/invocations", gbm_row if model == "credit-gbm" else mlp_row,
                "text/csv", 4, 1)
        time.sleep(2)
        for n in range(args.rounds):
            for c in concurrencies:
                for case, (model, where) in CASES.items():
                    ep = _name(case)
                    before = _shadow_counts(base, ep) if where is not None else {}
                    r = wrk(f"{base}/endpoints/{ep}/invocations", gbm_row if model == "credit-gbm" else mlp_row,
                            "text/csv", c, args.seconds)
                    point = {"p50_us": r["p50_ms"] * 1e3, "p99_us": r["p99_ms"] * 1e3, "per_s": r["rps"],
                             "errors": r["non_2xx"]}
                    if where is not None:
                        time.sleep(1.5)  # gateways report their counts every second
                        after = _shadow_counts(base, ep)
                        sent = r["rps"] * args.seconds or 1
                        point["dropped_share"] = (after["dropped"] - before["dropped"]) / sent
                        point["answered_share"] = (after["copies"] - before["copies"]) / sent
                    points.setdefault(f"c={c}", {}).setdefault(case, []).append(point)
                    print(f"  round {n} c={c} {case:22s} p50={point['p50_us']:.0f}us p99={point['p99_us']:.0f}us "
                          f"rps={point['per_s']:.0f} dropped={100 * point.get('dropped_share', 0):.0f}%", flush=True)
    finally:
        shutdown()
    med = {c: {case: {k: statistics.median(p[k] for p in pts) for k in pts[0]} for case, pts in cases.items()}
           for c, cases in points.items()}
    lines = ["| callers | model | shadow | p50 us | p99 us | req/s | copies answered | copies dropped |",
             "|---|---|---|---|---|---|---|---|"]
    for c, cases in med.items():
        for case, p in cases.items():
            model, _, shadow = case.partition("+")
            extra = (f"{100 * p['answered_share']:.0f} % | {100 * p['dropped_share']:.0f} %" if shadow else "- | -")
            lines.append(f"| {c.removeprefix('c=')} | {model} | {shadow or 'none'} | {p['p50_us']:.0f} | "
                         f"{p['p99_us']:.0f} | {p['per_s']:.0f} | {extra} |")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "shadow.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "ingress": ingress(cfg.server), "seconds_per_point": args.seconds, "rounds": args.rounds, "points": med,
        "table": table}, indent=2))


if __name__ == "__main__":
    main()
