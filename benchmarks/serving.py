"""Serving benchmark: onnxruntime directly, bare Ray Serve, and Ferry, side by side on the demo model.

    python -m benchmarks.serving [--seconds 5] [--concurrency 1,8,32,64] [--ingress haproxy,python]

Each ingress gets its own Ray session (HAProxy mode is a cluster-wide switch). In each session the
same cluster hosts the bare Ray Serve reference (the model in one deployment that parses CSV and runs
onnxruntime; with max_ongoing_requests 64, and with Ray's default 5; and a hand-written V2 ModelInfer for
gRPC) and Ferry's demo endpoint in four shapes: composed (gateway -> variant deployment, the default),
in-process (model in the gateway replica), and each with dynamic batching. wrk (HTTP) and ghz (gRPC) load
each target in turn over loopback. Needs `apt-get install wrk` and
`go install github.com/bojand/ghz/cmd/ghz@latest`. Writes
benchmarks/results/serving.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.loadgen import ghz, require_ghz, require_wrk, wrk

RESULTS = Path(__file__).parent / "results"


def direct_onnxruntime(model_path: str, row: np.ndarray, n: int = 20000) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, opts)
    x = row.reshape(1, -1).astype(np.float32)
    for _ in range(500):
        sess.run(None, {"input": x})
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        sess.run(None, {"input": x})
        times[i] = time.perf_counter() - t
    return {"concurrency": 1, "p50_ms": float(np.percentile(times, 50) * 1e3),
            "p99_ms": float(np.percentile(times, 99) * 1e3), "rps": float(n / times.sum()), "non_2xx": 0}


def bare_app(model_path: str, max_ongoing: int):
    """What a Ray Serve user writes by hand: parse CSV, run onnxruntime, answer CSV."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    @serve.deployment(max_ongoing_requests=max_ongoing, ray_actor_options={"num_cpus": 0.25},
                      logging_config={"enable_access_log": False, "log_level": "WARNING"})
    class BareOnnx:
        def __init__(self, path: str):
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self.sess = ort.InferenceSession(path, opts)

        async def __call__(self, request: Request) -> Response:
            text = (await request.body()).decode()
            x = np.array(text.replace("\n", ",").split(","), dtype=np.float32).reshape(-1, 8)
            label, proba = self.sess.run(None, {"input": x})
            lines = [f"{lab},{p[0]:.9g},{p[1]:.9g}" for lab, p in zip(label.tolist(), proba.tolist())]
            return Response("\n".join(lines) + "\n", media_type="text/csv")

    return BareOnnx.bind(model_path)


def bare_grpc_app(model_path: str):
    """A hand-written V2 ModelInfer on Ray Serve's gRPC proxy: raw FP32 in, raw outputs back."""
    from ray import serve

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.25},
                      logging_config={"enable_access_log": False, "log_level": "WARNING"})
    class BareGrpc:
        def __init__(self, path: str):
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self.sess = ort.InferenceSession(path, opts)

        async def ModelInfer(self, request):
            from serving.protos import inference_pb2 as pb

            x = np.frombuffer(request.raw_input_contents[0], dtype=np.float32).reshape(-1, 8)
            label, proba = self.sess.run(None, {"input": x})
            resp = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
            for name, arr in (("label", label), ("probabilities", proba)):
                resp.outputs.add(name=name, datatype="INT64" if arr.dtype == np.int64 else "FP32", shape=arr.shape)
                resp.raw_output_contents.append(arr.tobytes())
            return resp

    return BareGrpc.bind(model_path)


def ferry_config(demo_dir: Path, port: int, ingress: str) -> dict:
    from ferry.demo import demo_config

    doc = demo_config()
    doc["server"].update(http_port=port, ingress=ingress)
    base = {"model": "credit-gbm", "max_ongoing_requests": 64}
    batching = {"max_batch_size": 32, "batch_wait_timeout_ms": 2}
    doc["endpoints"] = [
        {"name": "composed", "variants": [dict(base)]},
        {"name": "composed-batched", "variants": [dict(base, batching=batching)]},
        {"name": "in-process", "variants": [dict(base, in_process=True)]},
        {"name": "in-process-batched", "variants": [dict(base, in_process=True, batching=batching)]},
    ]
    return doc


def run_ingress(ingress: str, demo_dir: Path, row: np.ndarray, concurrencies: list[int], seconds: float) -> list[dict]:
    import ray
    from ray import serve

    from ferry.config import parse_config
    from serving.deploy import deploy, start_ray

    port = 18500 + (ingress == "haproxy")
    grpc_port = 19500 + (ingress == "haproxy")
    body = ",".join(f"{v:g}" for v in row)
    doc = ferry_config(demo_dir, port, ingress)
    doc["server"]["grpc_port"] = grpc_port
    cfg = parse_config(doc, base=demo_dir, environ={})
    start_ray(cfg.server)
    rows = []
    try:
        model = str(demo_dir / "model.onnx")
        serve.run(bare_app(model, 64), name="bare", route_prefix="/bare")
        serve.run(bare_app(model, 5), name="bare-default", route_prefix="/bare-default")
        serve.run(bare_grpc_app(model), name="bare-grpc", route_prefix="/bare-grpc")
        deploy(cfg.models, cfg.endpoints, cfg.server)
        targets = [("bare Ray Serve (max_ongoing 64)", "/bare"), ("bare Ray Serve (defaults: max_ongoing 5)", "/bare-default")]
        targets += [(f"Ferry {ep.name}", f"/endpoints/{ep.name}/invocations") for ep in cfg.endpoints]
        for name, path in targets:
            url = f"http://127.0.0.1:{port}{path}"
            wrk(url, body, "text/csv", 4, 1)  # warm up
            for c in concurrencies:
                r = wrk(url, body, "text/csv", c, seconds)
                r.update(target=name, ingress=ingress)
                _report(r)
                rows.append(r)
        proto = str(Path(__file__).resolve().parents[1] / "serving" / "protos" / "inference.proto")
        raw = base64.b64encode(row.astype(np.float32).tobytes()).decode()
        grpc_targets = [("bare Ray Serve gRPC", "bare-grpc", "bare"), ("Ferry composed gRPC", "ferry", "composed"),
                        ("Ferry in-process gRPC", "ferry", "in-process")]
        for name, app, model_name in grpc_targets:
            data = {"model_name": model_name, "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 8]}],
                    "raw_input_contents": [raw]}
            call = "inference.GRPCInferenceService/ModelInfer"
            ghz(f"127.0.0.1:{grpc_port}", proto, call, data, 4, 1, {"application": app})  # warm up
            for c in concurrencies:
                r = ghz(f"127.0.0.1:{grpc_port}", proto, call, data, c, seconds, {"application": app})
                r.update(target=name, ingress=ingress)
                _report(r)
                rows.append(r)
    finally:
        serve.shutdown()
        ray.shutdown()
        os.environ.pop("RAY_SERVE_ENABLE_HA_PROXY", None)
        time.sleep(2)
    return rows


def _report(r: dict) -> None:
    print(f"  {r['ingress']:8s} {r['target']:42s} c={r['concurrency']:<3d} p50={r['p50_ms']}ms p99={r['p99_ms']}ms "
          f"rps={r['rps']:.0f} errors={r['non_2xx']}", flush=True)


def markdown(rows: list[dict], direct: dict) -> str:
    concs = sorted({r["concurrency"] for r in rows})
    head = "| ingress | target | " + " | ".join(f"c={c} p50 / p99 ms, req/s" for c in concs) + " |"
    lines = [head, "|" + "---|" * (2 + len(concs))]
    lines.append(f"| (none) | onnxruntime direct, 1 row | {direct['p50_ms']:.3f} / {direct['p99_ms']:.3f}, "
                 f"{direct['rps']:.0f} |" + " |" * (len(concs) - 1))
    keys = []
    for r in rows:
        k = (r["ingress"], r["target"])
        if k not in keys:
            keys.append(k)
    for ingress, target in keys:
        cells = []
        for c in concs:
            r = next((x for x in rows if x["ingress"] == ingress and x["target"] == target and x["concurrency"] == c), None)
            cells.append("-" if r is None or r["p50_ms"] is None else
                         f"{r['p50_ms']:.2f} / {r['p99_ms']:.1f}, **{r['rps']:.0f}**" + (" (errors)" if r["non_2xx"] else ""))
        lines.append(f"| {ingress} | {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--ingress", default="haproxy,python")
    args = ap.parse_args()
    require_wrk()
    require_ghz()
    from ferry.demo import make_credit_data, model_matrix, write_demo

    demo_dir = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    write_demo(demo_dir)
    row = model_matrix(make_credit_data(10, seed=99))[0]
    direct = direct_onnxruntime(str(demo_dir / "model.onnx"), row)
    concs = [int(c) for c in args.concurrency.split(",")]
    rows = []
    for ingress in args.ingress.split(","):
        rows += run_ingress(ingress, demo_dir, row, concs, args.seconds)
    table = markdown(rows, direct)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "seconds_per_point": args.seconds, "direct_onnxruntime": direct, "http": rows, "table": table,
        "load_generator": "wrk -t1 (HTTP, one CSV row per request) and ghz (gRPC, one raw FP32 row per "
                          "ModelInfer), on the same machine, loopback",
    }, indent=2))
    (RESULTS / "serving.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
