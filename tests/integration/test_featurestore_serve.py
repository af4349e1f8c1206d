"""`ferry features serve` as a real server on loopback, Redis-backed, driven by the Python client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import yaml

from featurestore.client import FeatureStoreClient, FeatureStoreError, values
from tests.integration.services import redis_url  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_serve_with_redis(tmp_path, redis_url):  # noqa: F811
    name = "srv_" + uuid.uuid4().hex[:8]
    cfg = tmp_path / "ferry.yaml"
    cfg.write_text(yaml.safe_dump({"redis": {"url": redis_url}, "feature_groups": [{
        "name": name, "record_identifier": "id", "event_time": "ts",
        "features": [{"name": "id", "type": "String"}, {"name": "ts", "type": "String"},
                     {"name": "score", "type": "Fractional"}, {"name": "tags", "type": "String",
                                                               "collection": "List"}]}]}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ferry.cli", "features", "serve", "-f", str(cfg), "--port", str(port)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE)
    client = FeatureStoreClient(f"http://127.0.0.1:{port}")
    try:
        deadline = time.time() + 60
        while True:
            try:
                assert client.http.get("/ping").json() == {"status": "ok"}
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()[-2000:]
                time.sleep(0.1)
        client.put_record(name, {"id": "a", "ts": "2026-01-01T00:00:01Z", "score": 0.5, "tags": ["x", "y"]})
        client.put_record(name, {"id": "a", "ts": "2026-01-01T00:00:00Z", "score": 0.1})  # older: ignored online
        got = client.get_record(name, "a")
        assert values(got["Record"]) == {"id": "a", "ts": "2026-01-01T00:00:01Z", "score": "0.5", "tags": ["x", "y"]}
        try:
            client.put_record(name, {"id": "b", "ts": "2026-01-01T00:00:00Z", "score": "high"})
            raise AssertionError("expected a 400")
        except FeatureStoreError as e:
            assert e.status == 400 and "score" in e.message
        metrics = client.http.get("/metrics").text
        assert "python_info" in metrics
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        client.close()
        import redis

        r = redis.Redis.from_url(redis_url)
        for k in r.scan_iter(match=f"fs:{name}:*"):
            r.delete(k)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_serve_token_and_streamed_limit(tmp_path):
    """A 64 MiB chunked body at a 4 MiB limit is cut off at the limit, not read whole; the token guards the routes."""
    cfg = tmp_path / "ferry.yaml"
    cfg.write_text(yaml.safe_dump({"server": {"auth_token": "t0k", "max_payload_bytes": 4 * 1024 * 1024},
                                   "feature_groups": [{
                                       "name": "lim", "record_identifier": "id", "event_time": "ts",
                                       "features": [{"name": "id", "type": "String"},
                                                    {"name": "ts", "type": "String"}]}]}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ferry.cli", "features", "serve", "-f", str(cfg), "--port",
                             str(port), "--data-dir", str(tmp_path / "fs")],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer t0k"}
    try:
        deadline = time.time() + 60
        while True:
            try:
                assert httpx.get(url + "/ping").status_code == 200
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()[-2000:]
                time.sleep(0.1)
        assert httpx.get(url + "/feature-groups").status_code == 401
        assert httpx.get(url + "/feature-groups", headers=auth).status_code == 200
        before = rss_mib(proc.pid)
        sent = 0

        def body():
            nonlocal sent
            for _ in range(1024):  # 64 MiB in 64 KiB chunks, no content-length
                sent += 1
                yield b"z" * 65536

        try:
            r = httpx.put(url + "/FeatureGroup/lim", content=body(), headers=auth, timeout=60)
            assert r.status_code == 413, r.text
        except httpx.TransportError:
            pass  # the server answered 413 and closed while the client was still sending
        grew = rss_mib(proc.pid) - before
        print(f"64 MiB chunked at a 4 MiB limit: client sent {sent * 64 / 1024:.1f} MiB, "
              f"server RSS grew {grew:.1f} MiB")
        assert grew < 24, f"server RSS grew {grew:.1f} MiB"
        assert httpx.put(url + "/FeatureGroup/lim", headers=auth, json={"Record": [
            {"FeatureName": "id", "ValueAsString": "a"},
            {"FeatureName": "ts", "ValueAsString": "2026-01-01T00:00:00Z"}]}
        ).status_code == 200  # still serving
    finally:
        proc.terminate()
        proc.wait(timeout=30)
