"""Ferry on a Ray cluster of two nodes, as a user runs it: `ray start` a head and a worker (each 4 logical CPUs,
its own ports and temp dir, on this machine), `ferry up --address` joins them, `ferry transform --address` runs a
job on them.

The gateway's two replicas land on both nodes (Ray Serve spreads a deployment's replicas), and the replica on
the worker node answers with the model's own predictions (the nodes run with Ray Serve's local-node preference
off, as docs/scaling.md says to do behind one proxy). The transform's four actors (1 CPU each) cannot all fit
on one node, so its job runs across both. Then the worker node's raylet is killed under load: the endpoint keeps
serving, Serve replaces the lost replica on the head, and the requests that failed meanwhile are counted and
printed. Every process the test starts is stopped at the end (never the session's Ray)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ferry.demo import AB_ENDPOINT, ENDPOINT, write_demo
from tests.raycluster import RayCluster, free_port, stop_process_group

FERRY = [sys.executable, "-m", "ferry.cli"]
ROWS_PER_REQUEST = 4


@pytest.fixture(scope="module")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="frc", dir="/var/tmp"))  # Ray's socket paths must stay short
    demo = root / "demo"
    write_demo(demo, n_rows=400)
    # One proxy (`ferry up` runs Serve's proxy on the head only): without this, it sends every request to the
    # replicas of its own node while they have room (Ray Serve's locality routing), and the worker's get none.
    ray = RayCluster(root / "r", extra_env={"RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0"})
    up = None
    try:
        ray.add_node(num_cpus=4)
        ray.add_node(num_cpus=4)
        nodes = ray.wait_for_nodes(2)
        head = next(n["node_id"] for n in nodes if n["is_head_node"])
        worker = next(n["node_id"] for n in nodes if not n["is_head_node"])
        http = free_port()
        # The cluster's processes were started without Ferry's HAProxy environment: the Python proxy it is.
        env = ray.env | dict(FERRY_SERVER__HTTP_PORT=str(http), FERRY_SERVER__GRPC_PORT=str(free_port()),
                        FERRY_SERVER__INGRESS="python", FERRY_SERVER__GATEWAY_REPLICAS="2")
        log = open(root / "up.log", "w+")
        up = subprocess.Popen(FERRY + ["up", "-f", str(demo / "ferry.yaml"), "--address", ray.address], env=env,
                              cwd=demo, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while not re.search(r"Ray address: (\S+)", _read(log)):
            assert up.poll() is None and time.monotonic() < deadline, f"ferry up --address failed:\n{_read(log)[-3000:]}"
            time.sleep(1)
        rows = np.loadtxt(demo / "test_features.csv", delimiter=",")
        sess = ort.InferenceSession(str(demo / "model.onnx"))
        label, proba = sess.run(None, {sess.get_inputs()[0].name: rows.astype(np.float32)})
        yield SimpleNamespace(ray=ray, head=head, worker=worker, url=f"http://127.0.0.1:{http}", demo=demo,
                              root=root, rows=rows, expected=np.column_stack([label, proba]), env=env, up=up, log=log)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0, _read(log)[-3000:]
        assert "shutting down" in _read(log)
    finally:
        if up is not None and up.poll() is None:
            stop_process_group(up)
        ray.stop()
        shutil.rmtree(root, ignore_errors=True)


def _read(log) -> str:
    log.seek(0)
    return log.read()


def _invoke(client: httpx.Client, c, i: int) -> str:
    """One request of ROWS_PER_REQUEST rows from row i: 'ok', 'wrong' or the failure."""
    idx = [(i + k) % len(c.rows) for k in range(ROWS_PER_REQUEST)]
    body = "\n".join(",".join(repr(float(v)) for v in c.rows[j]) for j in idx)
    try:
        r = client.post(f"{c.url}/endpoints/{ENDPOINT}/invocations", content=body,
                        headers={"content-type": "text/csv"}, timeout=15)
    except httpx.HTTPError as err:
        return type(err).__name__
    if r.status_code != 200:
        return f"HTTP {r.status_code}"
    got = np.array([[float(v) for v in line.split(",")] for line in r.text.strip().splitlines()])
    # labels exact; probabilities to float32's precision (onnxruntime's sums differ in the last bit with the
    # batch's size: 4 rows here, all the rows for the reference)
    ok = (got.shape == (ROWS_PER_REQUEST, 3) and (got[:, 0] == c.expected[idx, 0]).all()
          and np.allclose(got, c.expected[idx], rtol=0, atol=1e-6))
    return "ok" if ok else f"wrong: rows {idx}: shape {got.shape}, headers {dict(r.headers)}: {r.text!r}"


def _served_by_replica(url: str, endpoint: str = ENDPOINT, by_variant: bool = False) -> dict:
    """Requests answered, by gateway replica (and variant), as /metrics adds them up over the replicas."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    out: dict = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "ferry_invocations_total" and s.labels.get("endpoint") == endpoint:
                key = (s.labels["replica"], s.labels["variant"]) if by_variant else s.labels["replica"]
                out[key] = out.get(key, 0) + s.value
    return out


def _running(c, deployment: str) -> list[dict]:
    return [r for r in c.ray.serve_replicas("ferry").get(deployment, []) if r["state"] == "RUNNING"]


def test_gateway_replicas_spread_and_the_worker_node_replica_answers_correctly(cluster):
    c = cluster
    gateways = _running(c, "gateway")
    assert {r["node_id"] for r in gateways} == {c.head, c.worker}, gateways
    on_worker = next(r["replica_id"] for r in gateways if r["node_id"] == c.worker)
    results, sent = [], 0
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        while sent < 1024:  # until the worker node's replica has served (Serve's router picks the replica)
            results += pool.map(lambda i: _invoke(client, c, i), range(sent, sent + 64))
            sent += 64
            time.sleep(1.5)  # replicas push their counts once a second
            if _served_by_replica(c.url).get(on_worker):
                break
    served = _served_by_replica(c.url)
    assert served.get(on_worker, 0) > 0, f"after {sent} requests, served by replica: {served}; worker: {on_worker}"
    assert results.count("ok") == sent, "\n".join(x for x in results if x != "ok")


def test_a_weight_change_is_applied_by_both_gateway_replicas_when_the_control_api_answers(cluster):
    """Two gateway replicas on two nodes: the requests sent right after PUT .../weights has answered all meet
    the new weights, on both replicas (the control plane returns once every replica's reconfigure has)."""
    c = cluster
    url, row = f"{c.url}/endpoints/{AB_ENDPOINT}/invocations", ",".join(repr(float(v)) for v in c.rows[0])
    before = _served_by_replica(c.url, AB_ENDPOINT, by_variant=True)
    try:
        r = httpx.put(f"{c.url}/control/endpoints/{AB_ENDPOINT}/weights", json={"weights": {"A": 0, "B": 1}},
                      timeout=70)
        assert r.status_code == 200, r.text
        answered, delta = Counter(), {}
        with httpx.Client(timeout=15) as client, ThreadPoolExecutor(8) as pool:
            while len({replica for replica, _ in delta}) < 2 and answered.total() < 1024:  # until both answered
                answered += Counter(pool.map(lambda _: client.post(url, content=row, headers={
                    "content-type": "text/csv"}).headers["x-amzn-invoked-production-variant"], range(64)))
                deadline = time.monotonic() + 15
                while sum(delta.values()) < answered.total() and time.monotonic() < deadline:
                    time.sleep(1)  # replicas push their counts once a second
                    after = _served_by_replica(c.url, AB_ENDPOINT, by_variant=True)
                    delta = {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)}
        assert answered == Counter({"B": answered.total()})  # from the very first request after the answer
        assert {variant for _, variant in delta} == {"B"} and sum(delta.values()) == answered.total(), delta
        assert len({replica for replica, _ in delta}) == 2, delta  # both replicas answered, with the new weights
    finally:
        httpx.put(f"{c.url}/control/endpoints/{AB_ENDPOINT}/weights", json={"weights": {"A": 90, "B": 10}},
                  timeout=70)


@pytest.mark.parametrize("compute", ["core", "actors"])  # the default (Ray tasks), a Ray Data actor pool
def test_transform_runs_its_job_across_both_nodes(cluster, compute):
    c = cluster
    lines = (c.demo / "test_features.csv").read_text().splitlines()
    inp, out = c.root / f"t-in-{compute}", c.root / f"t-out-{compute}"
    inp.mkdir()
    for k in range(4):  # one chunk per file: four tasks (or four actors' work)
        (inp / f"part-{k}.csv").write_text("\n".join(lines[k::4]) + "\n")
    r = subprocess.run(FERRY + ["transform", "--model", str(c.demo / "model.onnx"), "--input", str(inp),
                                "--output", str(out), "--address", c.ray.address, "--compute", compute],
                       # a job this short ends on the head's actors before the worker's are up: Ray Data's
                       # setting (docs/scaling.md) makes the pool start whole
                       env=c.env | {"RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S": "120"}, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    for k in range(4):
        got = np.loadtxt(out / f"part-{k}.csv.out", delimiter=",", ndmin=2)
        np.testing.assert_array_equal(got[:, 0], c.expected[k::4, 0])
        np.testing.assert_allclose(got, c.expected[k::4], rtol=0, atol=1e-6)
    if compute == "actors":  # Ray Data names its pool's actor class MapWorker(<operator>)
        ran = [a for a in c.ray.state("actors") if a["class_name"].startswith("MapWorker(")]
    else:  # Ray tasks named transform_chunks
        ran = [t for t in c.ray.state("tasks") if "transform_chunks" in (t.get("name") or "")]
    placed = {a["node_id"] for a in ran if a.get("node_id")}
    where = [(a.get("name") or a.get("class_name"), a.get("node_id") and ("head" if a["node_id"] == c.head else
                                                                           "worker"), a["state"]) for a in ran]
    assert placed == {c.head, c.worker}, where


def test_killing_the_worker_node_leaves_the_endpoint_serving(cluster, capsys):
    c = cluster
    outcomes: list[tuple[float, str]] = []
    stop = threading.Event()

    def load(offset: int) -> None:
        with httpx.Client() as client:
            i = offset
            while not stop.is_set():
                outcomes.append((time.monotonic(), _invoke(client, c, i)))
                i += 4

    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(2)
    killed = time.monotonic()
    os.kill(c.ray.nodes[1].raylet_pid(), signal.SIGKILL)
    deadline, recovered = killed + 90, None
    while time.monotonic() < deadline:
        nodes = {n["node_id"]: n["state"] for n in c.ray.state("nodes")}
        gateways = _running(c, "gateway")
        if nodes.get(c.worker) == "DEAD" and len(gateways) == 2 and {r["node_id"] for r in gateways} == {c.head}:
            recovered = time.monotonic()
            break
        time.sleep(1)
    time.sleep(3)  # load on the recovered deployment
    stop.set()
    for t in threads:
        t.join(timeout=30)
    before = [o for t, o in outcomes if t < killed]
    after = [(t - killed, o) for t, o in outcomes if t >= killed]
    failed = [(round(t, 1), o) for t, o in after if o != "ok"]
    with capsys.disabled():
        print(f"\nworker node killed under load: {len(before)} requests before, {len(after)} after, "
              f"{len(failed)} failed after the kill "
              f"({', '.join(sorted({o for _, o in failed})) or 'none'}; first at {failed[0][0] if failed else '-'} s, "
              f"last at {failed[-1][0] if failed else '-'} s); replicas back on the head "
              f"{'after %.1f s' % (recovered - killed) if recovered else 'NOT within 90 s'}")
    assert recovered is not None, c.ray.serve_replicas("ferry")
    assert all(o == "ok" for o in before)
    assert not [o for _, o in after if o.startswith("wrong")]
    tail = [o for t, o in after if t > recovered - killed]
    assert tail and all(o == "ok" for o in tail), tail
