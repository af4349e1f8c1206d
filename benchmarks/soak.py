"""Soak: `ferry up` on the demo under a bounded mixed load on loopback for a while (default 10 minutes).

Load, paced (open loop, bounded in flight): SageMaker CSV and V2 JSON over HTTP, V2 ModelInfer over gRPC,
feature PutRecord and GetRecord on the mounted feature store; capture at 100 % to files; the demo's
data-quality monitoring schedule every 30 s. Per window: requests, errors, p99 by kind, and the RSS of the
whole `ferry up` process tree (Ray included), of the gateway replica, and of each process role (a replica by its
deployment, Ray's GCS, raylet, dashboard, controller, proxy, HAProxy, the `ferry up` driver) split into RssAnon
(private heap) and RssShmem (shared memory: Ray's object store). At the end: error rate, RSS growth (last third
of the run against the first, after warm-up) of the tree and per role, records captured (JSONL lines on disk)
against records sampled (every successful inference), monitoring executions.

    python -m benchmarks.soak [--minutes 10] [--out benchmarks/results/soak.json]

Run it alone (flock /tmp/ferry-heavy.lock ...): a figure taken beside another heavy run is not one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np
import yaml

from ferry.demo import ENDPOINT, demo_config, make_credit_data, model_matrix, write_demo

RATES = {"sagemaker": 40, "v2": 20, "grpc": 40, "put_record": 10, "get_record": 10}  # requests per second
INFERENCE = ("sagemaker", "v2", "grpc")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and its parts (RssAnon: private heap; RssShmem: shared memory such as Ray's object store, counted in
    every process that touches it) from /proc/<pid>/status; zeros for a process that is gone."""
    out = dict.fromkeys(("VmRSS", "RssAnon", "RssShmem"), 0.0)
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in out:
                out[name] = int(value.split()[0]) / 1024
    except (OSError, ValueError):
        pass
    return out


def rss_mb(pid: int) -> float:
    return memory_mb(pid)["VmRSS"]


PROGRAMS = {"gcs_server": "ray gcs_server", "raylet": "ray raylet", "haproxy": "haproxy"}
SCRIPTS = (("dashboard/agent.py", "ray dashboard agent"), ("dashboard/dashboard.py", "ray dashboard"),
           ("runtime_env/agent/main.py", "ray runtime-env agent"), ("log_monitor.py", "ray log_monitor"),
           ("autoscaler/_private/monitor.py", "ray autoscaler monitor"), ("ferry.cli", "ferry up (driver)"))


def role(pid: int) -> str:
    """What a process of the tree is: a Ray actor or worker by its title (ray::ServeReplica:ferry:gateway,
    ray::ServeController, ray::ProxyActor, ray::IDLE), else Ray's daemons, HAProxy or the `ferry up` driver."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return "gone"
    if argv[0].startswith("ray::"):
        return actor_role(argv[0].split()[0])
    program = Path(argv[0]).name
    if program in PROGRAMS:
        return PROGRAMS[program]
    joined = " ".join(argv)
    return next((name for needle, name in SCRIPTS if needle in joined), program or "?")


def actor_role(title: str) -> str:
    """A Ray worker's title without the method it is running: `ray::ServeReplica:ferry:gateway.handle_request`
    and `ray::SERVE_REPLICA::ferry#gateway#x1:ServeReplica:ferry:gateway.__init__` are both
    `ServeReplica:ferry:gateway`; `ray::ServeController.listen_for_change` is `ServeController`. Ferry's
    deployment names have dots but no underscores, Ray Serve's replica methods have underscores."""
    name = title.removeprefix("ray::")
    if "ServeReplica:" not in name:
        return name.split(".")[0]
    name = name[name.index("ServeReplica:"):]
    head, dot, method = name.rpartition(".")
    return head if dot and ("_" in method or method == "reconfigure") else name


def by_role(pids: list[int]) -> dict[str, dict[str, float]]:
    """Memory summed over the processes of each role: {role: {n, rss, anon, shmem}} in MB."""
    out: dict[str, dict[str, float]] = {}
    for p in pids:
        m = memory_mb(p)
        if not m["VmRSS"]:
            continue
        r = out.setdefault(role(p), {"n": 0, "rss": 0.0, "anon": 0.0, "shmem": 0.0})
        r["n"] += 1
        r["rss"] += m["VmRSS"]
        r["anon"] += m["RssAnon"]
        r["shmem"] += m["RssShmem"]
    return {k: {f: round(v, 1) for f, v in r.items()} for k, r in sorted(out.items())}


def gateway_pid(pids: list[int]) -> int | None:
    for p in pids:
        try:
            if b"ServeReplica:ferry:gateway" in Path(f"/proc/{p}/cmdline").read_bytes():
                return p
        except OSError:
            pass
    return None


class Stats:
    """Latencies and failures per window and kind."""

    def __init__(self):
        self.window: dict[str, list[float]] = defaultdict(list)
        self.failed: dict[str, int] = defaultdict(int)
        self.total: dict[str, int] = defaultdict(int)
        self.total_failed: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)

    def add(self, kind: str, seconds: float, ok: bool, why: str = "") -> None:
        self.window[kind].append(seconds)
        self.total[kind] += 1
        if not ok:
            self.failed[kind] += 1
            self.total_failed[kind] += 1
            self.errors[f"{kind}: {why[:80]}"] += 1

    def roll(self) -> dict:
        out = {k: {"requests": len(v), "failed": self.failed[k],
                   "p99_ms": round(float(np.percentile(v, 99)) * 1000, 2) if v else None}
               for k, v in self.window.items()}
        self.window, self.failed = defaultdict(list), defaultdict(int)
        return out


async def paced(kind: str, rate: float, until: float, call, stats: Stats, max_in_flight: int = 16) -> None:
    """Open-loop: one call every 1/rate s, at most max_in_flight at once (late calls are not made up)."""
    gate = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task] = set()

    async def one(i: int):
        async with gate:
            start = time.perf_counter()
            try:
                ok, why = await call(i)
            except Exception as err:  # noqa: BLE001 - a transport failure counts as an error
                ok, why = False, type(err).__name__
            stats.add(kind, time.perf_counter() - start, ok, why)

    i, next_at = 0, time.monotonic()
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        t = asyncio.create_task(one(i))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        i += 1
        next_at += 1.0 / rate
    await asyncio.gather(*tasks)


async def load(http_url: str, grpc_target: str, seconds: float, window_s: float, pids_of, stats: Stats) -> list:
    import grpc

    from serving.protos import inference_pb2 as pb
    from serving.protos import inference_pb2_grpc as pb_grpc

    rows = model_matrix(make_credit_data(200, seed=11)).astype(np.float32)
    csv = [",".join(f"{v:.6g}" for v in r) for r in rows]
    until = time.monotonic() + seconds
    timeline: list[dict] = []
    async with httpx.AsyncClient(base_url=http_url, timeout=30,
                                 limits=httpx.Limits(max_connections=64)) as http, \
            grpc.aio.insecure_channel(grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        async def sagemaker(i):
            r = await http.post(f"/endpoints/{ENDPOINT}/invocations", content=csv[i % 200],
                                headers={"content-type": "text/csv"})
            return r.status_code == 200, f"{r.status_code} {r.text[:60]}"

        async def v2(i):
            r = await http.post(f"/v2/models/{ENDPOINT}/infer", json={"inputs": [
                {"name": "input", "datatype": "FP32", "shape": [1, rows.shape[1]], "data": rows[i % 200].tolist()}]})
            return r.status_code == 200, f"{r.status_code} {r.text[:60]}"

        async def grpc_infer(i):
            req = pb.ModelInferRequest(model_name=ENDPOINT)
            req.inputs.add(name="input", datatype="FP32", shape=[1, rows.shape[1]])
            req.raw_input_contents.append(rows[i % 200].tobytes())
            try:
                await stub.ModelInfer(req, timeout=30)
            except grpc.aio.AioRpcError as err:
                return False, err.code().name
            return True, ""

        async def put_record(i):
            r = await http.put("/FeatureGroup/applicants", json={"Record": [
                {"FeatureName": "applicant_id", "ValueAsString": str(900_000 + i % 5000)},
                {"FeatureName": "event_time", "ValueAsString": f"{time.time():.3f}"},
                {"FeatureName": "age", "ValueAsString": str(20 + i % 50)},
                {"FeatureName": "income", "ValueAsString": str(30_000 + i)}]})
            return r.status_code == 200, f"{r.status_code} {r.text[:80]}"

        async def get_record(i):
            r = await http.get("/FeatureGroup/applicants", params={"RecordIdentifierValueAsString": str(i % 200)})
            return r.status_code == 200, f"{r.status_code} {r.text[:60]}"

        async def sample():
            start = time.monotonic()
            while time.monotonic() < until:
                await asyncio.sleep(window_s)
                pids = pids_of()
                gw = gateway_pid(pids)
                roles = by_role(pids)
                entry = {"t_s": round(time.monotonic() - start),
                         "rss_tree_mb": round(sum(r["rss"] for r in roles.values()), 1),
                         "rss_gateway_mb": round(rss_mb(gw), 1) if gw else None, "by_role_mb": roles,
                         **stats.roll()}
                timeline.append(entry)
                print(json.dumps({k: v for k, v in entry.items() if k != "by_role_mb"}), flush=True)

        calls = {"sagemaker": sagemaker, "v2": v2, "grpc": grpc_infer, "put_record": put_record,
                 "get_record": get_record}
        await asyncio.gather(sample(), *(paced(k, RATES[k], until, calls[k], stats) for k in calls))
    return timeline


def growth_by_role(steady: list[dict], third: int) -> dict[str, dict]:
    """Per role: processes, RSS at the start and end of the steady run, and the growth of RSS, RssAnon and
    RssShmem (mean of the last third minus mean of the first), largest RSS growth first."""
    if not steady:
        return {}
    roles = sorted({r for e in steady for r in e["by_role_mb"]})

    def mean(entries, r, field):
        return float(np.mean([e["by_role_mb"].get(r, {}).get(field, 0.0) for e in entries]))

    out = {}
    for r in roles:
        out[r] = {"processes": steady[-1]["by_role_mb"].get(r, {}).get("n", 0),
                  "rss_first_last_mb": [steady[0]["by_role_mb"].get(r, {}).get("rss", 0.0),
                                        steady[-1]["by_role_mb"].get(r, {}).get("rss", 0.0)],
                  **{f"{f}_growth_mb": round(mean(steady[-third:], r, f) - mean(steady[:third], r, f), 1)
                     for f in ("rss", "anon", "shmem")}}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["rss_growth_mb"]))


def role_table(growth: dict[str, dict]) -> str:
    lines = ["| process (role) | n | RSS first -> last MB | RSS growth | anon growth | shmem growth |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r, g in growth.items():
        first, last = g["rss_first_last_mb"]
        lines.append(f"| {r} | {g['processes']} | {first:.0f} -> {last:.0f} | {g['rss_growth_mb']:+.1f} | "
                     f"{g['anon_growth_mb']:+.1f} | {g['shmem_growth_mb']:+.1f} |")
    return "\n".join(lines)


def feature_schema_check(folder: Path) -> None:
    """The PutRecord body above names the demo group's features: fail early if the demo changed."""
    doc = yaml.safe_load((folder / "ferry.yaml").read_text())
    group = next(g for g in doc["feature_groups"] if g["name"] == "applicants")
    names = {f.get("FeatureName") or f.get("name") for f in group["features"]}
    missing = {"applicant_id", "event_time", "age", "income"} - names
    if missing:
        raise SystemExit(f"the demo's applicants group has no {sorted(missing)}: update benchmarks/soak.py")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--window", type=float, default=30.0, help="seconds per timeline entry")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds of load before figures count")
    ap.add_argument("--out", default="benchmarks/results/soak.json")
    args = ap.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ferry-soak-"))
    write_demo(folder, n_rows=2000)
    feature_schema_check(folder)
    doc = demo_config(monitoring=True)
    http_port, grpc_port = free_port(), free_port()
    doc["server"].update(http_port=http_port, grpc_port=grpc_port, haproxy_stats_port=free_port(),
                         haproxy_metrics_port=free_port(), fallback_http_port=free_port(),
                         fallback_grpc_port=free_port(), replica_port_base=23000)
    (folder / "ferry.yaml").write_text(yaml.safe_dump(doc))
    up = subprocess.Popen([sys.executable, "-m", "ferry.cli", "up", "-f", str(folder / "ferry.yaml")],
                          cwd=folder, stdout=subprocess.DEVNULL, stderr=open(folder / "ferry-up.log", "w"),
                          start_new_session=True)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if up.poll() is not None:
                raise SystemExit(f"ferry up exited: {(folder / 'ferry-up.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("ferry up did not answer /ping within 300 s")
            time.sleep(1)
        stats = Stats()
        seconds = args.warmup + args.minutes * 60
        timeline = asyncio.run(load(url, f"127.0.0.1:{grpc_port}", seconds, args.window, lambda: tree(up.pid),
                                    stats))
        time.sleep(3)  # the capture writer flushes every 0.2 s; give it a few cycles
        executions = httpx.get(f"{url}/monitoring/executions", timeout=30).json()["executions"]
    finally:
        os.killpg(up.pid, signal.SIGINT)
        try:
            up.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
    captured = sum(sum(1 for _ in f.open()) for f in (folder / "capture").rglob("*.jsonl"))
    sampled = sum(stats.total[k] - stats.total_failed[k] for k in INFERENCE)  # 100 % sampling
    steady = [e for e in timeline if e["t_s"] > args.warmup]
    third = max(1, len(steady) // 3)
    growth = (np.mean([e["rss_tree_mb"] for e in steady[-third:]]) - np.mean([e["rss_tree_mb"] for e in steady[:third]])
              if steady else None)
    gw = [e["rss_gateway_mb"] for e in steady if e["rss_gateway_mb"]]
    gw_growth = np.mean(gw[-third:]) - np.mean(gw[:third]) if len(gw) >= 2 else None
    p99 = {k: [e[k]["p99_ms"] for e in steady if k in e] for k in RATES}
    role_growth = growth_by_role(steady, third)
    summary = {
        "minutes": args.minutes, "rates_per_s": RATES,
        "requests": dict(stats.total), "failed": dict(stats.total_failed), "errors": dict(stats.errors),
        "error_rate": sum(stats.total_failed.values()) / max(1, sum(stats.total.values())),
        "p99_ms_by_window": p99,
        "rss_tree_mb_first_last": [steady[0]["rss_tree_mb"], steady[-1]["rss_tree_mb"]] if steady else None,
        "rss_tree_growth_mb": None if growth is None else round(float(growth), 1),
        "rss_gateway_growth_mb": None if gw_growth is None else round(float(gw_growth), 1),
        "growth_by_role_mb": role_growth,
        "records_sampled": sampled, "records_captured": captured,
        "monitoring_executions": len(executions),
        "monitoring_statuses": sorted({e.get("status", "?") for e in executions}),
        "timeline": timeline,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("timeline", "growth_by_role_mb")}, indent=1))
    print(role_table(role_growth))
    if captured != sampled:
        print(f"records captured {captured} != records sampled {sampled}", file=sys.stderr)


if __name__ == "__main__":
    main()
