"""Serving benchmark: Ferry's default shape against hand-written Ray Serve, side by side in one Ray session.

    python -m benchmarks.serving [--seconds 3] [--rounds 3] [--concurrency 1,8,32,64] [--ingress haproxy]
                                 [--targets composed,MLP]  (targets whose name holds one of these; default all)
                                 [--pairs 12] [--pair-seconds 3]

What runs, on the same cluster, behind the same ingress (HAProxy by default, Ray Serve's fastest here),
loaded by the same native clients (wrk for HTTP, one CSV row per request; ghz for gRPC, one raw FP32 row
per ModelInfer) over loopback, every target at every concurrency in each of `--rounds` sweeps; the table shows
the median over the sweeps, and each ratio is taken within a sweep (the two sides measured seconds apart,
since runs on 2 shared cores vary by 20-40 %). Each measured run follows one second of its own target's load
(WARM_SECONDS).

Then the comparisons the targets are judged on (PAIRED: Ferry's default against bare at c=8, 32 and 64, the
composed shape against the pickle composition at c=1) are measured again as `--pairs` pairs of runs back to back,
which side goes first alternating, each pair giving one ratio; the median of the pairs is the figure. A control
pair, bare against itself, shows the method's own spread: on this project's 2-core machine the same target
measured twice in a row differs by up to 20 %, so a sweep's few ratios cannot resolve 10 %.

The targets:

- bare Ray Serve: one deployment that parses CSV, runs onnxruntime and answers CSV (max_ongoing_requests 64,
  Ray's strongest setting here), and a hand-written V2 ModelInfer for gRPC; the same deployment again with its
  client sending `x-request-disconnect-disabled: ?1`, which turns off Ray's per-request disconnect watch (what
  Ferry's HAProxy asks for on its own apps, serving.haproxy; a bare user's clients would have to send it);
- a hand-written Ray Serve composition: an ingress that parses CSV and calls a model deployment through a
  DeploymentHandle (on Ray Serve's gRPC transport, as Ferry's hops are: the environment's
  RAY_SERVE_USE_GRPC_BY_DEFAULT, which Ray applies only to handles made where it was set before Ray Serve was
  imported, applied to the handle bound here, as serving.variants.hop applies it to Ferry's; with Ray's default
  serialization, cloudpickle, as a user gets it, where Ferry's hops ask for plain pickle), and the same asking
  for plain pickle too (the strongest composition by hand);
- Ferry's default (`ferry demo` without capture: the model inside the gateway, whose replica also holds the
  other endpoints below), the same endpoint alone in a gateway of its own (what co-hosted endpoints cost it),
  the same with capture at 100 %, Ferry's composed shape (the variant as its own deployment, concurrent requests
  gathered into one handle call), and Ferry over gRPC;
- a wide MLP (~1 ms per call), unbatched and with Ferry's adaptive batching.

Before the load runs, `handler_cost` times each request handler in this process without Ray or sockets
(decode, route, model, encode, metrics; capture including its writer thread), so the per-request work of
Ferry and of the bare handler are compared directly. Needs `apt-get install wrk` and
`go install github.com/bojand/ghz/cmd/ghz@latest`. Writes benchmarks/results/serving.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.loadgen import ghz, require_ghz, require_wrk, wrk

RESULTS = Path(__file__).parent / "results"
MLP_WIDTH = 256
NO_DISCONNECT_WATCH = {"x-request-disconnect-disabled": "?1"}  # Ray Serve's header (serving.haproxy)


def wide_mlp(path: Path, hidden: int = 2048, seed: int = 0) -> None:
    """An MLP [n, 256] -> 2048 -> 2048 -> 1 (ReLU): about 1 ms per single-row call on one core."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.05, (MLP_WIDTH, hidden)), rng.normal(0, 0.05, (hidden, hidden)),
               rng.normal(0, 0.05, (hidden, 1))]
    inits = [numpy_helper.from_array(w.astype(np.float32), f"w{i}") for i, w in enumerate(weights)]
    nodes = [helper.make_node("MatMul", ["input", "w0"], ["h0"]), helper.make_node("Relu", ["h0"], ["r0"]),
             helper.make_node("MatMul", ["r0", "w1"], ["h1"]), helper.make_node("Relu", ["h1"], ["r1"]),
             helper.make_node("MatMul", ["r1", "w2"], ["score"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", MLP_WIDTH])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["n", 1])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


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
    return {"p50_us": float(np.percentile(times, 50) * 1e6), "p99_us": float(np.percentile(times, 99) * 1e6)}


class BareHandler:
    """What a Ray Serve user writes by hand: parse CSV, run onnxruntime, answer CSV."""

    def __init__(self, path: str, width: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.sess = ort.InferenceSession(path, opts)
        self.width = width

    async def __call__(self, request):
        from starlette.responses import Response

        text = (await request.body()).decode()
        x = np.array(text.replace("\n", ",").split(","), dtype=np.float32).reshape(-1, self.width)
        outputs = self.sess.run(None, {"input": x})
        if len(outputs) == 1:
            lines = [f"{v:.9g}" for v in outputs[0].ravel().tolist()]
        else:
            label, proba = outputs
            lines = [f"{lab},{p[0]:.9g},{p[1]:.9g}" for lab, p in zip(label.tolist(), proba.tolist())]
        return Response("\n".join(lines) + "\n", media_type="text/csv")


def bare_app(model_path: str, width: int = 8, max_ongoing: int = 64):
    from ray import serve

    return serve.deployment(BareHandler, name="BareOnnx", max_ongoing_requests=max_ongoing,
                            ray_actor_options={"num_cpus": 0.25},
                            logging_config={"enable_access_log": False, "log_level": "WARNING"}).bind(model_path, width)


def composition_app(model_path: str, pickle: bool = False):
    """A hand-written composition: ingress parses CSV, a model deployment runs onnxruntime via a handle; with
    `pickle`, the handle also asks for plain pickle, as Ferry's hops do (the strongest composition by hand)."""
    from ray import serve
    from starlette.responses import Response

    quiet = {"enable_access_log": False, "log_level": "WARNING"}

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.25}, logging_config=quiet)
    class Model:
        def __init__(self, path: str):
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self.sess = ort.InferenceSession(path, opts)

        async def __call__(self, x):
            return self.sess.run(None, {"input": x})

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0.25}, logging_config=quiet)
    class Ingress:
        def __init__(self, model):
            # the environment's RAY_SERVE_USE_GRPC_BY_DEFAULT, as Ferry's hop applies it (serving.variants.hop):
            # Ray applies it only to handles made in the replica, and this one was bound in the driver
            grpc = os.environ.get("RAY_SERVE_USE_GRPC_BY_DEFAULT") == "1"
            serialization = {"request_serialization": "pickle", "response_serialization": "pickle"} if pickle else {}
            self.model = model.options(_by_reference=False, **serialization) if grpc else model

        async def __call__(self, request):
            text = (await request.body()).decode()
            x = np.array(text.replace("\n", ",").split(","), dtype=np.float32).reshape(-1, 8)
            label, proba = await self.model.remote(x)
            lines = [f"{lab},{p[0]:.9g},{p[1]:.9g}" for lab, p in zip(label.tolist(), proba.tolist())]
            return Response("\n".join(lines) + "\n", media_type="text/csv")

    return Ingress.bind(Model.bind(model_path))


def bare_grpc_app(model_path: str):
    """A hand-written V2 ModelInfer on Ray Serve's gRPC path: raw FP32 in, raw outputs back."""
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


def ferry_doc(demo_dir: Path, port: int, grpc_port: int, ingress: str) -> dict:
    from ferry.demo import demo_config

    doc = demo_config()
    doc["server"].update(http_port=port, grpc_port=grpc_port, ingress=ingress)
    doc["models"].append({"name": "mlp", "path": "mlp.onnx"})
    batching: dict = {}  # the defaults: adaptive, max 32, no wait
    capture = {"enabled": True, "sampling_percentage": 100, "destination": str(demo_dir / "bench-capture")}
    doc["endpoints"] = [
        {"name": "default", "variants": [{"model": "credit-gbm"}]},
        {"name": "captured", "variants": [{"model": "credit-gbm"}], "data_capture": capture},
        {"name": "composed", "variants": [{"model": "credit-gbm", "in_process": False}]},
        {"name": "mlp", "variants": [{"model": "mlp"}]},
        {"name": "mlp-batched", "variants": [{"model": "mlp", "batching": batching}]},
    ]
    doc.pop("feature_groups", None)
    doc.pop("monitoring_schedules", None)
    return doc


# --- per-request work, measured in this process (no Ray, no sockets)

def _request(path: str, body: bytes):
    from starlette.requests import Request

    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "path": path, "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"text/csv"), (b"content-length", str(len(body)).encode())]}
    return Request(scope, receive)


async def _time_handler(handler, path: str, body: bytes, n: int) -> float:
    for _ in range(300):
        await handler(_request(path, body))
    start = time.perf_counter()
    for _ in range(n):
        resp = await handler(_request(path, body))
    took = time.perf_counter() - start
    assert resp.status_code == 200, resp.body
    return took / n


def handler_cost(demo_dir: Path, body: str, n: int = 20000) -> dict:
    """Microseconds per request of the bare handler, Ferry's gateway, and Ferry's gateway with capture at
    100 % (the capture writer thread's work included: timed until its queue is written)."""
    from ferry.config import parse_config
    from serving.gateway import Gateway

    cfg = parse_config(ferry_doc(demo_dir, 8080, 9000, "python"), base=demo_dir, environ={})
    eps = {ep.name: ep for ep in cfg.endpoints}
    models = {m.name: m for m in cfg.models}
    bare = BareHandler(str(demo_dir / "model.onnx"), 8)
    plain = Gateway.func_or_class([eps["default"]], models, cfg.server, {})
    captured = Gateway.func_or_class([eps["captured"]], models, cfg.server, {})
    raw = body.encode()

    sink = captured.plane.endpoints["captured"].capture.sink
    sink.max_queue = n + 1000  # every record written: none dropped for a full queue while timing
    gc.collect()
    gc.freeze()  # what start-up made is never collected, as in a Ray Serve replica (RAY_SERVE_FREEZE_GC_ON_STARTUP)

    async def run():
        out = {"bare_us": await _time_handler(bare, "/", raw, n) * 1e6,
               "ferry_us": await _time_handler(plain, "/endpoints/default/invocations", raw, n) * 1e6}
        start = time.perf_counter()
        per = await _time_handler(captured, "/endpoints/captured/invocations", raw, n)
        drained = time.perf_counter()
        captured.plane.endpoints["captured"].close()  # waits for the writer to write what is queued
        out["ferry_capture_us"] = (per * n + time.perf_counter() - drained) / n * 1e6
        out["capture_wall_us"] = (time.perf_counter() - start) / (n + 300) * 1e6
        return out

    result = asyncio.run(run())
    gc.unfreeze()
    result["ratio"] = result["ferry_us"] / result["bare_us"]
    result["capture_adds_us"] = result["ferry_capture_us"] - result["ferry_us"]
    return result


# --- load through the ingress

# Every measured run follows a run of its own target this long, not counted: a target measured right after another
# one ran ~15 % below the same target measured right after itself (back-to-back pairs at c=32: the first of each
# pair, which repeated the previous pair's last target, was the faster one in 11 of 12 pairs, whichever side it
# was; bare measured twice in a row showed no such effect). Without it a sweep measured Ferry's default always
# cold (it follows other apps' targets) and bare warm in every other sweep (after the same deployment asked not to
# watch for disconnects).
WARM_SECONDS = 1

# The comparisons the targets are judged on, measured again as `--pairs` back-to-back pairs: (key, target,
# reference, concurrency). The first is a control: the same target twice, so its spread is the method's own.
PAIRED = [("control: bare/bare rps c=32", "bare Ray Serve", "bare Ray Serve", 32),
          ("default/bare rps c=8", "Ferry default", "bare Ray Serve", 8),
          ("default/bare rps c=32", "Ferry default", "bare Ray Serve", 32),
          ("default/bare rps c=64", "Ferry default", "bare Ray Serve", 64),
          ("composed/hand-written with pickle rps c=1", "Ferry composed", "hand-written composition, pickle", 1)]


def run_ingress(ingress: str, demo_dir: Path, row: np.ndarray, mlp_row: np.ndarray, concurrencies: list[int],
                seconds: float, rounds: int, targets: list[str] | None = None, pairs: int = 0,
                pair_seconds: float = 3.0) -> tuple[list[dict], list[dict]]:
    """Every target (or those whose name holds one of `targets`) at every concurrency, `rounds` times over: each
    round runs the targets one after another, so a reference and the Ferry shape it is compared with are
    measured seconds apart, in reverse order every other round. Then each PAIRED comparison `pairs` times as two
    runs back to back, which goes first alternating. Returns (sweep rows, pair rows)."""
    from ray import serve

    from ferry.app import application
    from ferry.config import parse_config
    from serving.deploy import deploy, shutdown, start_ray

    port, grpc_port = 18500, 19500
    cfg = parse_config(ferry_doc(demo_dir, port, grpc_port, ingress), base=demo_dir, environ={})
    start_ray(cfg.server)
    rows: list[dict] = []
    body = ",".join(f"{v:.9g}" for v in row)
    mlp_body = ",".join(f"{v:.6g}" for v in mlp_row)
    try:
        model = str(demo_dir / "model.onnx")
        serve.run(bare_app(model), name="bare", route_prefix="/bare")
        serve.run(bare_app(str(demo_dir / "mlp.onnx"), MLP_WIDTH), name="bare-mlp", route_prefix="/bare-mlp")
        serve.run(composition_app(model), name="bare-composed", route_prefix="/bare-composed")
        serve.run(composition_app(model, pickle=True), name="bare-composed-pickle", route_prefix="/bare-composed-pickle")
        serve.run(bare_grpc_app(model), name="bare-grpc", route_prefix="/bare-grpc")
        deploy(application(cfg, demo_dir))
        alone = ferry_doc(demo_dir, port, grpc_port, ingress)
        alone["endpoints"] = alone["endpoints"][:1]  # the same default endpoint, alone in its gateway
        deploy(application(parse_config(alone, base=demo_dir, environ={}), demo_dir), app_name="ferry-alone",
               route_prefix="/alone")
        http = [("bare Ray Serve", "/bare", body),
                ("bare Ray Serve, client asks for no disconnect watch", "/bare", body, NO_DISCONNECT_WATCH),
                ("Ferry default", "/endpoints/default/invocations", body),
                ("Ferry default, alone in its gateway", "/alone/endpoints/default/invocations", body),
                ("Ferry default, capture 100 %", "/endpoints/captured/invocations", body),
                ("hand-written composition", "/bare-composed", body),
                ("hand-written composition, pickle", "/bare-composed-pickle", body),
                ("Ferry composed", "/endpoints/composed/invocations", body),
                ("bare Ray Serve, MLP", "/bare-mlp", mlp_body), ("Ferry MLP", "/endpoints/mlp/invocations", mlp_body),
                ("Ferry MLP, batched", "/endpoints/mlp-batched/invocations", mlp_body)]
        proto = str(Path(__file__).resolve().parents[1] / "serving" / "protos" / "inference.proto")
        raw = base64.b64encode(row.astype(np.float32).tobytes()).decode()
        call = "inference.GRPCInferenceService/ModelInfer"
        grpc = [("bare Ray Serve gRPC", "bare-grpc", "bare"), ("Ferry default gRPC", "ferry", "default")]
        if targets:
            http, grpc = ([t for t in group if any(k.lower() in t[0].lower() for k in targets)] for group in (http, grpc))

        def grpc_load(app: str, model_name: str, c: int, secs: float) -> dict:
            data = {"model_name": model_name, "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 8]}],
                    "raw_input_contents": [raw]}
            return ghz(f"127.0.0.1:{grpc_port}", proto, call, data, c, secs, {"application": app})

        for name, path, data, *headers in http:  # warm up
            wrk(f"http://127.0.0.1:{port}{path}", data, "text/csv", 4, 1, *headers)
        for name, app, model_name in grpc:
            grpc_load(app, model_name, 4, 1)
        for n in range(rounds):
            # every other round runs the targets in reverse order, so that no target is always measured right
            # after the same other one (a reference and its Ferry shape each go first in half the rounds)
            step = 1 if n % 2 == 0 else -1
            for c in concurrencies:
                for name, path, data, *headers in http[::step]:
                    wrk(f"http://127.0.0.1:{port}{path}", data, "text/csv", c, WARM_SECONDS, *headers)
                    r = wrk(f"http://127.0.0.1:{port}{path}", data, "text/csv", c, seconds, *headers)
                    rows.append(_report(r | {"target": name, "ingress": ingress, "protocol": "http", "round": n}))
                for name, app, model_name in grpc[::step]:
                    grpc_load(app, model_name, c, WARM_SECONDS)
                    r = grpc_load(app, model_name, c, seconds)
                    rows.append(_report(r | {"target": name, "ingress": ingress, "protocol": "grpc", "round": n}))
        by_name = {name: (path, data, *headers) for name, path, data, *headers in http}
        pair_rows: list[dict] = []
        for key, target, reference, c in PAIRED:
            if target not in by_name or reference not in by_name:
                continue
            for n in range(pairs):
                order = [("target", target), ("reference", reference)][:: 1 if n % 2 == 0 else -1]
                got = {}
                for side, name in order:
                    path, data, *headers = by_name[name]
                    url = f"http://127.0.0.1:{port}{path}"
                    wrk(url, data, "text/csv", c, WARM_SECONDS, *headers)
                    got[side] = wrk(url, data, "text/csv", c, pair_seconds, *headers)
                pair_rows.append({"key": key, "ingress": ingress, "pair": n, "first": order[0][0],
                                  "target_rps": got["target"]["rps"], "reference_rps": got["reference"]["rps"],
                                  "ratio": got["target"]["rps"] / got["reference"]["rps"]})
                print(f"  pair {n} {key}: {got['target']['rps']:.0f} / {got['reference']['rps']:.0f} req/s = "
                      f"{pair_rows[-1]['ratio']:.2f}", flush=True)
    finally:
        shutdown()
        for var in [k for k in os.environ if k.startswith("RAY_SERVE_")]:
            os.environ.pop(var)
        time.sleep(2)
    return rows, pair_rows


def paired_ratios(pair_rows: list[dict]) -> dict:
    """Per PAIRED comparison: the median of its pairs' ratios, with quartiles, range and count."""
    out = {}
    for key in dict.fromkeys(r["key"] for r in pair_rows):
        values = [r["ratio"] for r in pair_rows if r["key"] == key]
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        out[key] = {"median": float(med), "q1": float(q1), "q3": float(q3), "min": float(min(values)),
                    "max": float(max(values)), "pairs": len(values)}
    return out


def _report(r: dict) -> dict:
    print(f"  round {r['round']} {r['ingress']:8s} {r['target']:32s} c={r['concurrency']:<3d} p50={r['p50_ms']}ms "
          f"p99={r['p99_ms']}ms rps={r['rps']:.0f} errors={r['non_2xx']}", flush=True)
    return r


def medians(rows: list[dict]) -> list[dict]:
    """One row per (ingress, target, concurrency): the median over rounds of req/s, p50 and p99."""
    keys = list(dict.fromkeys((r["ingress"], r["target"], r["protocol"], r["concurrency"]) for r in rows))
    out = []
    for ingress, target, protocol, c in keys:
        runs = [r for r in rows if (r["ingress"], r["target"], r["concurrency"]) == (ingress, target, c)]

        def med(field: str) -> float | None:
            values = [r[field] for r in runs if r[field] is not None]
            return float(np.median(values)) if values else None
        out.append({"ingress": ingress, "target": target, "protocol": protocol, "concurrency": c,
                    "rps": med("rps"), "p50_ms": med("p50_ms"), "p99_ms": med("p99_ms"), "rounds": len(runs),
                    "non_2xx": sum(r["non_2xx"] for r in runs)})
    return out


def _point(rows: list[dict], target: str, c: int, ingress: str, round_: int | None = None) -> dict | None:
    return next((r for r in rows if r["target"] == target and r["concurrency"] == c and r["ingress"] == ingress
                 and r.get("round") == round_), None)


def ratios(rows: list[dict], ingress: str, concurrencies: list[int]) -> dict:
    """The targets' ratios, each taken within a round (the two targets measured seconds apart), as
    {"median", "min", "max"} over the rounds: throughput against the reference named, p50 at c=1."""
    def value(target: str, c: int, n: int, field: str) -> float:
        p = _point(rows, target, c, ingress, n)
        return p[field] if p and p[field] else float("nan")

    pairs = []
    for c in concurrencies:
        pairs += [(f"default/bare rps c={c}", "Ferry default", "bare Ray Serve", c, "rps"),
                  (f"default/bare whose client asks for no disconnect watch rps c={c}", "Ferry default",
                   "bare Ray Serve, client asks for no disconnect watch", c, "rps"),
                  (f"default co-hosted/alone rps c={c}", "Ferry default", "Ferry default, alone in its gateway", c,
                   "rps"),
                  (f"composed/hand-written rps c={c}", "Ferry composed", "hand-written composition", c, "rps"),
                  (f"composed/hand-written with pickle rps c={c}", "Ferry composed",
                   "hand-written composition, pickle", c, "rps"),
                  (f"MLP batched/unbatched rps c={c}", "Ferry MLP, batched", "Ferry MLP", c, "rps")]
    pairs += [("default/bare p50 c=1", "Ferry default", "bare Ray Serve", 1, "p50_ms"),
              ("gRPC/HTTP p50 c=1 (Ferry default)", "Ferry default gRPC", "Ferry default", 1, "p50_ms"),
              ("Ferry gRPC/bare gRPC p50 c=1", "Ferry default gRPC", "bare Ray Serve gRPC", 1, "p50_ms")]
    rounds = sorted({r["round"] for r in rows if r["ingress"] == ingress})
    out = {}
    for key, target, reference, c, field in pairs:
        if not (_point(rows, target, c, ingress, rounds[0]) and _point(rows, reference, c, ingress, rounds[0])):
            continue  # a target not run (--targets)
        values = [value(target, c, n, field) / value(reference, c, n, field) for n in rounds]
        out[key] = {"median": float(np.median(values)), "min": float(min(values)), "max": float(max(values))}
    return out


def markdown(rows: list[dict], direct: dict, handler: dict, ratio: dict, paired: dict) -> str:
    concs = sorted({r["concurrency"] for r in rows})
    head = "| ingress | target | " + " | ".join(f"c={c} p50 / p99 ms, req/s" for c in concs) + " |"
    lines = [head, "|" + "---|" * (2 + len(concs))]
    keys = []
    for r in rows:
        if (r["ingress"], r["target"]) not in keys:
            keys.append((r["ingress"], r["target"]))
    for ingress, target in keys:
        cells = []
        for c in concs:
            r = _point(rows, target, c, ingress)
            cells.append("-" if r is None or r["p50_ms"] is None else
                         f"{r['p50_ms']:.2f} / {r['p99_ms']:.1f}, **{r['rps']:.0f}**" + (" (errors)" if r["non_2xx"] else ""))
        lines.append(f"| {ingress} | {target} | " + " | ".join(cells) + " |")
    lines += ["", f"onnxruntime alone, one row: p50 {direct['p50_us']:.1f} us.",
              f"Per-request work in-process (no Ray, no sockets): bare handler {handler['bare_us']:.1f} us, Ferry "
              f"{handler['ferry_us']:.1f} us ({handler['ratio']:.2f}x), Ferry with capture at 100 % "
              f"{handler['ferry_capture_us']:.1f} us (capture adds {handler['capture_adds_us']:.1f} us).", "",
              "| ratio | median over rounds (min-max) |", "|---|---|"]
    lines += [f"| {k} | {v['median']:.2f} ({v['min']:.2f}-{v['max']:.2f}) |" for k, v in ratio.items()]
    if paired:
        lines += ["", "| paired ratio | median of the pairs (quartiles; min-max), pairs |", "|---|---|"]
        lines += [f"| {k} | {v['median']:.2f} ({v['q1']:.2f}-{v['q3']:.2f}; {v['min']:.2f}-{v['max']:.2f}), "
                  f"{v['pairs']} |" for k, v in paired.items()]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="sweeps over every target; the table shows medians")
    ap.add_argument("--concurrency", default="1,8,32,64")
    ap.add_argument("--ingress", default="haproxy", help="haproxy, python or both (comma-separated)")
    ap.add_argument("--targets", default="", help="run only the targets whose name holds one of these "
                                                  "(comma-separated, any case), e.g. 'composed' or 'MLP'")
    ap.add_argument("--pairs", type=int, default=12, help="back-to-back pairs per PAIRED comparison (0: none)")
    ap.add_argument("--pair-seconds", type=float, default=3)
    args = ap.parse_args()
    require_wrk()
    require_ghz()
    from ferry.demo import make_credit_data, model_matrix, write_demo

    demo_dir = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
    write_demo(demo_dir)
    wide_mlp(demo_dir / "mlp.onnx")
    row = model_matrix(make_credit_data(10, seed=99))[0]
    mlp_row = np.random.default_rng(1).normal(size=MLP_WIDTH).astype(np.float32)
    direct = direct_onnxruntime(str(demo_dir / "model.onnx"), row)
    handler = handler_cost(demo_dir, ",".join(f"{v:.9g}" for v in row))
    print(f"handler: {handler}", flush=True)
    concs = [int(c) for c in args.concurrency.split(",")]
    runs, ratio, pair_rows, paired = [], {}, [], {}
    for ingress in args.ingress.split(","):
        swept, paired_here = run_ingress(ingress, demo_dir, row, mlp_row, concs, args.seconds, args.rounds,
                                         [t.strip() for t in args.targets.split(",") if t.strip()], args.pairs,
                                         args.pair_seconds)
        runs += swept
        pair_rows += paired_here
        ratio |= {f"{ingress}: {k}": v for k, v in ratios(runs, ingress, concs).items()}
        paired |= {f"{ingress}: {k}": v for k, v in paired_ratios(paired_here).items()}
    rows = medians(runs)
    table = markdown(rows, direct, handler, ratio, paired)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving.json").write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "seconds_per_point": args.seconds, "rounds": args.rounds, "direct_onnxruntime": direct,
        "handler_cost": handler, "load": rows, "runs": runs,
        "ratios": ratio, "pair_seconds": args.pair_seconds, "pairs": pair_rows, "paired_ratios": paired,
        "table": table,
        "load_generator": "wrk -t1 (HTTP, one CSV row per request) and ghz (gRPC, one raw FP32 row per "
                          "ModelInfer), on the same machine, loopback",
    }, indent=2))
    (RESULTS / "serving.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
