"""Serving capacity on one Ray node vs two: the demo endpoint's requests/s, `ferry up --address` on a cluster
started with `ray start` on this machine.

    python -m benchmarks.scaling [--seconds 10] [--concurrency 32] [--replicas 2,4]

Both shapes have the same logical resources and the same application: one node with 4 logical CPUs, or a head
and a worker with 2 each (tests/raycluster.py starts them, each node its own raylet, object store and temp
dir); the gateway with `--replicas` replicas (the demo's model runs inside it), Serve's proxy on the head only
(`ferry up`'s HeadOnly), Ray Serve's local-node routing off so that the head's proxy sends the worker's replicas
their share, the Python ingress on both (the nodes are started without Ferry's HAProxy environment). wrk posts
one CSV row per request to the head's proxy. Both nodes share this machine's cores, so a second node brings no
new CPU: the figure shows what the cross-node hop costs, not what a second machine gives. Writes
benchmarks/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.loadgen import require_wrk, wrk
from ferry.demo import ENDPOINT, write_demo
from tests.raycluster import RayCluster, free_port, stop_process_group

RESULTS = Path(__file__).parent / "results"
FERRY = [sys.executable, "-m", "ferry.cli"]


def run_shape(nodes: int, replicas: int, seconds: float, concurrency: int, root: Path, demo: Path) -> dict:
    ray = RayCluster(root / f"r{nodes}{replicas}", extra_env={"RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0"})
    up = None
    try:
        for _ in range(nodes):
            ray.add_node(num_cpus=4 // nodes)
        alive = ray.wait_for_nodes(nodes)
        head = next(n["node_id"] for n in alive if n["is_head_node"])
        http = free_port()
        env = ray.env | dict(FERRY_SERVER__HTTP_PORT=str(http), FERRY_SERVER__GRPC_PORT=str(free_port()),
                             FERRY_SERVER__INGRESS="python", FERRY_SERVER__GATEWAY_REPLICAS=str(replicas))
        log = open(root / f"up-{nodes}-{replicas}.log", "w+")
        up = subprocess.Popen(FERRY + ["up", "-f", str(demo / "ferry.yaml"), "--address", ray.address], env=env,
                              cwd=demo, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 240
        while True:
            log.seek(0)
            text = log.read()
            if re.search(r"Ray address: (\S+)", text):
                break
            if up.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ferry up --address failed:\n{text[-3000:]}")
            time.sleep(1)
        gateways = [r for r in ray.serve_replicas("ferry").get("gateway", []) if r["state"] == "RUNNING"]
        url = f"http://127.0.0.1:{http}/endpoints/{ENDPOINT}/invocations"
        row = (demo / "test_features.csv").read_text().splitlines()[0]
        wrk(url, row, "text/csv", concurrency, 3)  # warm up
        r = wrk(url, row, "text/csv", concurrency, seconds)
        r.update(nodes=nodes, gateway_replicas=replicas,
                 replicas_on_head=sum(g["node_id"] == head for g in gateways),
                 replicas_on_worker=sum(g["node_id"] != head for g in gateways))
        print(json.dumps(r), flush=True)
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
        return r
    finally:
        if up is not None and up.poll() is None:
            stop_process_group(up)
        ray.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--replicas", default="2,4")
    args = ap.parse_args()
    require_wrk()
    root = Path(tempfile.mkdtemp(prefix="frb", dir="/var/tmp"))  # Ray's socket paths must stay short
    try:
        demo = root / "demo"
        write_demo(demo, n_rows=200)
        rows = [run_shape(nodes, int(replicas), args.seconds, args.concurrency, root, demo)
                for replicas in args.replicas.split(",") for nodes in (1, 2)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
           "setup": {"seconds": args.seconds, "concurrency": args.concurrency, "ingress": "python",
                     "logical_cpus_total": 4, "request": "one CSV row, the demo endpoint"},
           "results": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scaling.json").write_text(json.dumps(out, indent=2) + "\n")
    for r in rows:
        print(f"{r['nodes']} node(s), {r['gateway_replicas']} gateway replicas ({r['replicas_on_head']} on the head, "
              f"{r['replicas_on_worker']} on the worker): {r['rps']:.0f} req/s, p50 {r['p50_ms']} ms, "
              f"p99 {r['p99_ms']} ms, non-2xx {r['non_2xx']} {r['socket_errors']}")


if __name__ == "__main__":
    main()
