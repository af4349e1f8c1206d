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


def listeners() -> dict[int, set[str]]:
    """Listening TCP ports on IPv4 and the addresses they are bound to (from /proc/net/tcp)."""
    out: dict[int, set[str]] = {}
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":
            addr, port = local.split(":")
            ip = ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0))
            out.setdefault(int(port, 16), set()).add(ip)
    return out


@pytest.mark.parametrize("ingress", ["python", "auto"])
def test_demo_up_status_invoke_and_clean_shutdown(tmp_path, ingress):
    """`auto` is the default: HAProxy (installed with Ferry), the model inside the gateway, HAProxy's own
    listeners on 127.0.0.1."""
    out = tmp_path / "demo"
    r = subprocess.run(FERRY + ["demo", "--out", str(out), "--no-serve"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {"train.csv", "test.csv", "test_features.csv", "model.onnx", "ferry.yaml"} <= {p.name for p in out.iterdir()}
    http, grpc_port = free_port(), free_port()
    # A user's shell: none of the Ray settings the session's own Ray put in this process's environment
    # (RAY_SERVE_ENABLE_HA_PROXY would turn HAProxy on for ingress python, on the session's HAProxy ports)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {"FERRY_SERVER__HTTP_PORT": str(http), "FERRY_SERVER__GRPC_PORT": str(grpc_port),
            "FERRY_SERVER__INGRESS": ingress}
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
        r = subprocess.run(FERRY + ["status", "--address", address], capture_output=True, text=True, timeout=60,
                           env=env)
        assert r.returncode == 0, r.stderr
        assert "credit-risk" in r.stdout and "AllTraffic" in r.stdout and "HEALTHY" in r.stdout
        assert "in gateway" in r.stdout  # the default shape: no variant deployment
        log.seek(0)
        assert f"ingress: {'haproxy' if ingress == 'auto' else 'python'}" in log.read()
        if ingress == "auto":
            listening = listeners()
            assert listening.get(8404) == {"127.0.0.1"} and listening.get(9101) == {"127.0.0.1"}
            assert listening.get(http) == {"127.0.0.1"}
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
