"""`ferry demo --traffic` as a new user runs it: the monitor flags the drifted feature, the CLI agrees, a
second Ferry on the same port is refused, and start-up and Ctrl-C stay quiet (issue 10 items 3, 4, 6)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx

from ferry.demo import BASELINE_DIR
from ferry.demo_traffic import DRIFT_FEATURE
from tests.integration.conftest import free_port

FERRY = [sys.executable, "-m", "ferry.cli"]


def _wait_for(log, pattern: str, proc: subprocess.Popen, timeout_s: float) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        log.seek(0)
        m = re.search(pattern, log.read())
        if m:
            return m
        time.sleep(1)
    log.seek(0)
    raise AssertionError(f"no {pattern!r} in ferry demo's output within {timeout_s} s:\n{log.read()[-3000:]}")


def test_demo_traffic_shows_drift_and_stays_quiet(tmp_path):
    http, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_") and k != "RAY_ADDRESS"}
    env |= {"FERRY_SERVER__HTTP_PORT": str(http), "FERRY_SERVER__GRPC_PORT": str(grpc_port)}
    demo = tmp_path / "ferry-demo"
    log = open(tmp_path / "demo.log", "w+")
    proc = subprocess.Popen(FERRY + ["demo", "--out", str(demo), "--traffic"], stdout=log, stderr=subprocess.STDOUT,
                            env=env, cwd=tmp_path)
    try:
        found = _wait_for(log, r"monitor: .*", proc, timeout_s=300).group(0)
        assert f"{DRIFT_FEATURE} (baseline_drift_check)" in found and "CompletedWithViolations" in found, found

        executions = httpx.get(f"http://127.0.0.1:{http}/monitoring/executions", timeout=10).json()["executions"]
        flagged = [e for e in executions if e["status"] == "CompletedWithViolations"]
        assert flagged, executions
        violations = json.loads((demo / flagged[-1]["path"] / "constraint_violations.json").read_text())["violations"]
        assert [v["feature_name"] for v in violations] == [DRIFT_FEATURE]
        assert list((demo / "ground-truth" / "credit-risk").rglob("*.jsonl")), "the traffic posted no ground truth"

        r = subprocess.run(FERRY + ["monitor", "data-quality", "--baseline", str(demo / BASELINE_DIR),
                                    "--data", str(demo / "capture"), "--out", str(tmp_path / "dq")],
                           capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        assert [v["feature_name"] for v in json.loads(r.stdout)["violations"]] == [DRIFT_FEATURE]

        started = time.monotonic()
        r = subprocess.run(FERRY + ["up", "-f", str(demo / "ferry.yaml")], capture_output=True, text=True,
                           timeout=120, env=env)
        assert r.returncode == 2 and time.monotonic() - started < 60, r.stderr
        assert f"port {http} (server.http_port)" in r.stderr and "haproxy" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=150)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0
    log.seek(0)
    out = log.read()
    assert "shutting down" in out
    for noise in ("graceful_shutdown", "(ServeController", "(ProxyActor", "Traceback"):
        assert noise not in out, f"{noise!r} in ferry demo's output:\n{out}"
    assert f"SageMaker: POST http://127.0.0.1:{http}/endpoints/credit-risk/invocations   KServe V2: POST " \
           f"http://127.0.0.1:{http}/v2/models/credit-risk/infer" in out  # not wrapped though stdout is a file
