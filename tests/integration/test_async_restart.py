"""kill -9 of `ferry up` with asynchronous requests queued, then a restart: every accepted request ends
exactly once (lost 0, completed twice 0), on both queues at once - one endpoint on the SQLite queue, one on
a Kafka topic (the real broker), in the same `ferry up`.

`ferry up` runs as a user runs it, with its own Ray (none of the session Ray's RAY_* settings), in its own
process group; the whole group is SIGKILLed right after the last 202. After the kill, the queue file and
the Kafka group's lag say that requests were still waiting or running; every result already in place is noted (inode and mtime).
After the restart every request is Completed with one result at its OutputLocation, equal to onnxruntime,
nothing at its FailureLocation, and no result written before the kill was written again."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import yaml

from kafka.admin import KafkaAdminClient

from serving.asyncq.kafka import consumer_lag
from tests.integration.conftest import free_port
from tests.integration.services import kafka_bootstrap  # noqa: F401 - fixture

FERRY = [sys.executable, "-m", "ferry.cli"]
N = 24
ROWS = 50_000  # tens of ms of work per request with one slot, requests sent at once: most still queued at the kill


def start(deploy_file: Path, log_path: Path, env: dict) -> subprocess.Popen:
    log = open(log_path, "a+")
    proc = subprocess.Popen(FERRY + ["up", "-f", str(deploy_file)], stdout=log, stderr=subprocess.STDOUT, env=env,
                            cwd=deploy_file.parent, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if re.search(r"Ray address: \S+", log_path.read_text().split("--- restart ---")[-1]):
            return proc
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"ferry up did not come up:\n{log_path.read_text()[-3000:]}")


def left_by(http: int, sessions: list[int]) -> list[str]:
    """What a `ferry up` on port `http` may leave running once stopped or killed: a process of its sessions
    (itself and what it started in them), an HAProxy of its state folder (`haproxy-<http>`: HAProxy is a child
    of Ray Serve's proxy actor and outlives it, parent 1, when the actor is killed)."""
    marker = f"/haproxy-{http}/"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat[0] != "Z" and (int(stat[3]) in sessions or marker in cmdline):
            found.append(f"{pid} (parent {stat[1]}): {cmdline[:200]}")
    return found


def stop_leftovers(http: int, sessions: list[int]) -> None:
    """SIGKILL what `left_by` finds (the test's own processes only: its sessions, its port's HAProxy)."""
    for line in left_by(http, sessions):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def session_processes(sid: int) -> list[int]:
    """Processes still alive in session `sid` (the killed `ferry up` and everything it started)."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(int(pid))
    return alive


def test_kill_9_with_requests_queued_then_restart_loses_none_and_completes_none_twice(tmp_path, demo_dir,
                                                                                      kafka_bootstrap):  # noqa: F811
    rows = np.loadtxt(demo_dir / "test_features.csv", delimiter=",")
    rows = np.resize(rows, (ROWS, rows.shape[1]))
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / "batch.csv"
    np.savetxt(src, rows, delimiter=",", fmt="%.6g")
    expected = ort.InferenceSession(str(demo_dir / "model.onnx")).run(
        None, {"input": np.loadtxt(src, delimiter=",").astype(np.float32)})[0]
    http = free_port()
    topic = f"ferry.test.async-restart-{uuid.uuid4().hex[:8]}"
    queued = {"output_path": "out", "failure_path": "failed", "input_prefixes": ["in"], "queue_path": "queue.db",
              "max_concurrent_invocations": 1, "lease_s": 2}
    kqueued = {"output_path": "kout", "failure_path": "kfailed", "input_prefixes": ["in"], "queue": "kafka",
               "topic": topic, "max_concurrent_invocations": 1}
    deploy_file = tmp_path / "ferry.yaml"
    deploy_file.write_text(yaml.safe_dump({
        "server": {"http_port": http, "grpc_port": free_port(), "ingress": "python"},
        "kafka": {"bootstrap_servers": kafka_bootstrap},
        "models": [{"name": "credit-gbm", "path": str(demo_dir / "model.onnx")}],
        "endpoints": [{"name": "queued", "variants": [{"model": "credit-gbm"}], "async": queued},
                      {"name": "kqueued", "variants": [{"model": "credit-gbm"}], "async": kqueued}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # a user's shell: its own Ray
    log = tmp_path / "up.log"
    urls = {ep: f"http://127.0.0.1:{http}/endpoints/{ep}/async-invocations" for ep in ("queued", "kqueued")}
    outs = {"queued": tmp_path / "out", "kqueued": tmp_path / "kout"}
    proc = start(deploy_file, log, env)
    sessions = [proc.pid]
    try:
        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda a: client.post(urls[a[0]], headers={
                "X-Amzn-SageMaker-InputLocation": str(src), "X-Amzn-SageMaker-Content-Type": "text/csv",
                "X-Amzn-SageMaker-Inference-Id": f"r{a[1]}"}), [(ep, i) for i in range(N) for ep in urls]))
        assert [r.status_code for r in answers] == [202] * 2 * N, [r.text for r in answers if r.status_code != 202]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    try:
        deadline = time.monotonic() + 30
        while session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not session_processes(proc.pid), "processes of the killed ferry up are still alive"

        db = sqlite3.connect(tmp_path / "queue.db")
        states = dict(db.execute("SELECT id, state FROM requests").fetchall())
        db.close()
        assert len(states) == N  # every 202 was on disk
        waiting = [i for i, s in states.items() if s in ("queued", "running")]
        assert waiting, f"every request was done before the kill: nothing tested ({states})"
        lag = consumer_lag(kafka_bootstrap, topic, f"{topic}.workers")
        assert lag > 0, "every Kafka request was committed before the kill: nothing tested"
        before = {(ep, p.name): (p.stat().st_ino, p.stat().st_mtime_ns)
                  for ep, d in outs.items() for p in d.glob("*.out")}

        with open(log, "a") as f:
            f.write("--- restart ---\n")
        proc = start(deploy_file, log, env)
        sessions.append(proc.pid)
        try:
            deadline = time.monotonic() + 90
            with httpx.Client(timeout=30) as client:
                for ep, url in urls.items():
                    for i in range(N):
                        while (doc := client.get(f"{url}/r{i}").json()).get("Status") in ("Queued", "InProgress",
                                                                                          "Pending"):
                            assert time.monotonic() < deadline, f"{ep} r{i} still {doc['Status']} after the restart"
                            time.sleep(0.2)
                        assert doc.get("Status") == "Completed", (ep, doc)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise

        for ep, out in outs.items():
            outputs = sorted(p.name for p in out.iterdir())
            assert outputs == sorted(f"r{i}.out" for i in range(N)), ep  # one result each, no temporary file left
            failed = tmp_path / ("failed" if ep == "queued" else "kfailed")
            assert not failed.exists() or not list(failed.iterdir()), ep
            for name in outputs:
                labels = [int(ln.split(",")[0]) for ln in (out / name).read_text().splitlines()]
                assert labels == expected.tolist(), (ep, name)
        for (ep, name), stamp in before.items():  # a result written before the kill is never written again
            p = outs[ep] / name
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == stamp, f"{ep} {name} was written a second time"
        assert consumer_lag(kafka_bootstrap, topic, f"{topic}.workers") == 0  # every Kafka record committed
        print(f"kill -9 with {len(waiting)} of {N} SQLite and {lag} of {N} Kafka requests waiting: lost 0, "
              "completed twice 0")
    finally:
        try:
            deadline = time.monotonic() + 30  # a stopped ferry up's Ray takes a moment to go
            while left_by(http, sessions) and time.monotonic() < deadline:
                time.sleep(0.5)
            left = left_by(http, sessions)
            stop_leftovers(http, sessions)
            assert not left, "left running after the test:\n" + "\n".join(left)
        finally:
            admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            try:
                admin.delete_topics([topic])
            finally:
                admin.close()
