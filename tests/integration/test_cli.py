"""The `ferry` CLI as a user runs it: demo, up (its own Ray), status, invoke, Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.integration.conftest import free_port

FERRY = [sys.executable, "-m", "ferry.cli"]


@pytest.mark.parametrize("ingress", ["python", "haproxy"])
def test_demo_up_status_invoke_and_clean_shutdown(tmp_path, ingress):
    out = tmp_path / "demo"
    r = subprocess.run(FERRY + ["demo", "--out", str(out), "--no-serve"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {"train.csv", "test.csv", "test_features.csv", "model.onnx", "ferry.yaml"} <= {p.name for p in out.iterdir()}
    http, grpc_port = free_port(), free_port()
    env = dict(os.environ, FERRY_SERVER__HTTP_PORT=str(http), FERRY_SERVER__GRPC_PORT=str(grpc_port),
               FERRY_SERVER__INGRESS=ingress)
    env.pop("RAY_ADDRESS", None)
    log = open(tmp_path / "up.log", "w+")
    proc = subprocess.Popen(FERRY + ["up", "-f", str(out / "ferry.yaml")], stdout=log, stderr=subprocess.STDOUT,
                            env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 180
        address = None
        while time.monotonic() < deadline and proc.poll() is None:
            log.seek(0)
            m = re.search(r"Ray address: (\S+)", log.read())
            if m:
                address = m.group(1)
                break
            time.sleep(1)
        log.seek(0)
        assert address, f"ferry up did not come up:\n{log.read()[-3000:]}"
        assert httpx.get(f"http://127.0.0.1:{http}/ping").status_code == 200
        r = subprocess.run(FERRY + ["invoke", "credit-risk", "--body", str(out / "test_features.csv"),
                                    "--url", f"http://127.0.0.1:{http}"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        n_rows = len((out / "test_features.csv").read_text().splitlines())
        assert len(r.stdout.splitlines()) == n_rows and "variant: AllTraffic" in r.stderr
        r = subprocess.run(FERRY + ["status", "--address", address], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "credit-risk" in r.stdout and "AllTraffic" in r.stdout and "HEALTHY" in r.stdout
        r = subprocess.run(FERRY + ["invoke", "nope", "--body", str(out / "test_features.csv"),
                                    "--url", f"http://127.0.0.1:{http}"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1 and "ValidationError" in r.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(timeout=150)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0
    log.seek(0)
    assert "shutting down" in log.read()


def test_invalid_deploy_file_fails_before_anything_starts(tmp_path):
    bad = tmp_path / "ferry.yaml"
    bad.write_text("server:\n  http_port: 80000\nendpoints: []\nmodels: []\nextra: 1\n")
    r = subprocess.run(FERRY + ["up", "-f", str(bad)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "server.http_port" in r.stderr and "extra" in r.stderr
