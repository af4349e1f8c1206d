"""The `ferry` CLI as a user runs it: demo, up (its own Ray), status, invoke, Ctrl-C; boto3 with real
credentials through each ingress (SigV4 beside the bearer token)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import boto3
import botocore.auth
import httpx
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError

from serving.haproxy import FERRY_BACKEND_RULES
from tests.integration.conftest import free_port

FERRY = [sys.executable, "-m", "ferry.cli"]
TOKEN, KEY, SECRET = "cli-token", "AKIAFERRYCLITEST0001", "cli/Secret+Access0Key000000000000000000000"


def sigv4_checks(url: str, body: str, monkeypatch) -> None:
    """boto3 with real credentials: the right key passes; a wrong secret, an unknown key, a stale date and a
    body changed after signing are 403s in AWS's words."""
    def runtime(key=KEY, secret=SECRET):
        return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1", aws_access_key_id=key,
                            aws_secret_access_key=secret, config=Config(retries={"total_max_attempts": 1}))

    def refusal(client) -> tuple[int, str, str]:
        with pytest.raises(ClientError) as err:
            client.invoke_endpoint(EndpointName="credit-risk", Body=body, ContentType="text/csv")
        e = err.value.response
        return e["ResponseMetadata"]["HTTPStatusCode"], e["Error"]["Code"], e["Error"]["Message"]

    r = runtime().invoke_endpoint(EndpointName="credit-risk", Body=body, ContentType="text/csv")
    assert r["InvokedProductionVariant"] == "AllTraffic" and len(r["Body"].read().splitlines()) == len(body.splitlines())
    assert refusal(runtime(secret="wrong" + SECRET[5:]))[:2] == (403, "InvalidSignatureException")
    assert refusal(runtime(key="AKIAUNKNOWN0000000000")) == (
        403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    tampered = runtime()
    tampered.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint",
                                  lambda request, **_: setattr(request, "body", request.body.replace(b"0", b"1")))
    assert refusal(tampered)[:2] == (403, "InvalidSignatureException")
    stale = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(minutes=10)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: stale)
    status, code, message = refusal(runtime())
    assert (status, code) == (403, "InvalidSignatureException") and message.startswith("Signature expired")
    monkeypatch.undo()


def haproxy_config(port: int) -> str:
    """The config of the running HAProxy that listens on `port` (from its command line's -f)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")
            if os.path.basename(args[0]) == "haproxy" and "-f" in args:
                text = open(args[args.index("-f") + 1]).read()
                if f"bind 127.0.0.1:{port}\n" in text:
                    return text
        except (OSError, IndexError):
            continue
    raise AssertionError(f"no running HAProxy listens on {port}")


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
def test_demo_up_status_invoke_and_clean_shutdown(tmp_path, ingress, monkeypatch):
    """`auto` is the default: HAProxy (installed with Ferry), the model inside the gateway, HAProxy's own
    listeners on 127.0.0.1. The deploy file has a bearer token and a SigV4 access key (its secret from the
    environment): `ferry invoke` passes with the token, boto3 with the key."""
    out = tmp_path / "demo"
    r = subprocess.run(FERRY + ["demo", "--out", str(out), "--no-serve"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {"train.csv", "test.csv", "test_features.csv", "model.onnx", "ferry.yaml"} <= {p.name for p in out.iterdir()}
    doc = yaml.safe_load((out / "ferry.yaml").read_text())
    doc["server"]["sigv4"] = {"access_keys": {KEY: "${CLI_TEST_SIGV4_SECRET}"}}
    (out / "ferry.yaml").write_text(yaml.safe_dump(doc))
    http, grpc_port = free_port(), free_port()
    # A user's shell: none of the Ray settings the session's own Ray put in this process's environment
    # (RAY_SERVE_ENABLE_HA_PROXY would turn HAProxy on for ingress python, on the session's HAProxy ports)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {"FERRY_SERVER__HTTP_PORT": str(http), "FERRY_SERVER__GRPC_PORT": str(grpc_port),
            "FERRY_SERVER__INGRESS": ingress, "FERRY_SERVER__AUTH_TOKEN": TOKEN, "CLI_TEST_SIGV4_SECRET": SECRET}
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
                                    "--url", f"http://127.0.0.1:{http}", "--token", TOKEN],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        n_rows = len((out / "test_features.csv").read_text().splitlines())
        assert len(r.stdout.splitlines()) == n_rows and "variant: AllTraffic" in r.stderr
        sigv4_checks(f"http://127.0.0.1:{http}", (out / "test_features.csv").read_text(), monkeypatch)
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
            # Ferry's app skips Ray's per-request disconnect watch and HAProxy gives each request an id
            # (serving.haproxy); the calls above went through it
            assert f"backend http-ferry\n{FERRY_BACKEND_RULES}" in haproxy_config(http)
            assert uuid.UUID(httpx.get(f"http://127.0.0.1:{http}/ping").headers["x-request-id"]).version == 4
            mine = {"x-request-id": "client-chosen-1"}
            assert httpx.get(f"http://127.0.0.1:{http}/ping", headers=mine).headers["x-request-id"] == "client-chosen-1"
        r = subprocess.run(FERRY + ["invoke", "nope", "--body", str(out / "test_features.csv"),
                                    "--url", f"http://127.0.0.1:{http}", "--token", TOKEN],
                           capture_output=True, text=True, timeout=60)
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
