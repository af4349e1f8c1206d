"""Faults with figures, on private servers (the shared Kafka and Redis are never restarted):
Redis restarted under feature reads (clear 503s while down, recovery seconds), and the Kafka broker restarted
during ingestion (records lost: 0)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / ".ci" / "services"
SHARED_STATE = Path(os.environ.get("FERRY_SERVICES_DIR", Path.home() / ".cache" / "ferry-services"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing answers on 127.0.0.1:{port} after {timeout}s")


def start_redis(port: int, folder: Path) -> subprocess.Popen:
    """redis-server with an append-only file, so a restart keeps the records."""
    proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL)
    wait_port(port)
    return proc


def serve(cfg: Path, data_dir: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "ferry.cli", "features", "serve", "-f", str(cfg), "--port",
                             str(port), "--data-dir", str(data_dir)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/feature-groups", timeout=2)
            return proc
        except httpx.HTTPError:
            assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()[-2000:]
            time.sleep(0.1)


def test_redis_restart_under_feature_reads(tmp_path):
    rport, hport = free_port(), free_port()
    redis_proc = start_redis(rport, tmp_path)
    cfg = tmp_path / "ferry.yaml"
    cfg.write_text(yaml.safe_dump({"redis": {"url": f"redis://127.0.0.1:{rport}/0"}, "feature_groups": [{
        "name": "users", "record_identifier": "id", "event_time": "et",
        "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"},
                     {"name": "v", "type": "Fractional"}]}]}))
    server = serve(cfg, tmp_path / "fs", hport)
    url = f"http://127.0.0.1:{hport}"
    log: list[tuple[float, int, str]] = []  # (time, status, __type or value)
    stop = threading.Event()
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            for i in range(50):
                r = c.put("/FeatureGroup/users", json={"Record": [
                    {"FeatureName": "id", "ValueAsString": str(i)}, {"FeatureName": "et", "ValueAsString": "1"},
                    {"FeatureName": "v", "ValueAsString": str(i / 2)}]})
                assert r.status_code == 200

            def reads():
                i = 0
                deadline = time.time() + 60  # bounded
                while not stop.is_set() and time.time() < deadline:
                    i = (i + 1) % 50
                    r = c.get("/FeatureGroup/users", params={"RecordIdentifierValueAsString": str(i)})
                    body = r.json()
                    if r.status_code == 200:
                        ok = body["Record"][2]["ValueAsString"] == str(i / 2)
                        log.append((time.monotonic(), 200, "ok" if ok else f"wrong answer {body}"))
                    else:
                        log.append((time.monotonic(), r.status_code, body.get("__type", "?")))
                    time.sleep(0.005)

            reader = threading.Thread(target=reads)
            reader.start()
            time.sleep(1.0)
            t_down = time.monotonic()
            redis_proc.send_signal(signal.SIGTERM)
            redis_proc.wait(timeout=30)
            time.sleep(2.0)  # down for two seconds
            t_up = time.monotonic()  # restarted (it answers within a few ms)
            redis_proc = start_redis(rport, tmp_path)
            deadline = time.time() + 30
            while time.time() < deadline and not (log and log[-1][0] > t_up and log[-1][1] == 200):
                time.sleep(0.05)
            time.sleep(0.5)
            stop.set()
            reader.join(timeout=30)
    finally:
        stop.set()
        server.terminate()
        server.wait(timeout=30)
        redis_proc.terminate()
        redis_proc.wait(timeout=30)
    kinds = {(s, k) for _, s, k in log}
    assert kinds <= {(200, "ok"), (503, "ServiceUnavailable")}, kinds  # nothing else: no 500, no wrong answer
    errors = [t for t, s, _ in log if s == 503]
    assert errors, "no read saw the outage"
    first_ok_after = min(t for t, s, _ in log if s == 200 and t > errors[-1])
    assert min(errors) >= t_down - 0.05 and first_ok_after > t_up - 0.05
    print(f"Redis restart under reads: {len(log)} reads, {len(errors)} answered 503 ServiceUnavailable while down, "
          f"0 other errors; reads answered again {first_ok_after - t_up:.2f}s after Redis was restarted "
          f"(outage seen by clients {first_ok_after - min(errors):.2f}s)")


class PrivateKafka:
    """A broker of this test's own, started and stopped by .ci/services with its own state folder and ports."""

    def __init__(self, folder: Path):
        libs = SHARED_STATE / "kafka" / "libs"
        if not (libs / ".complete").is_file():
            pytest.fail(f"no resolved Kafka jars in {libs}: run `.ci/services start` first", pytrace=False)
        self.port = free_port()
        self.env = {**os.environ, "FERRY_SERVICES_DIR": str(folder), "FERRY_KAFKA_LIBS": str(libs),
                    "FERRY_KAFKA_PORT": str(self.port), "FERRY_KAFKA_CONTROLLER_PORT": str(free_port()),
                    "FERRY_REDIS_PORT": str(free_port())}
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _run(self, action: str) -> None:
        r = subprocess.run([str(SERVICES), action], env=self.env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


def test_kafka_broker_restart_during_ingestion_loses_nothing(tmp_path):
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    n, n_ids = 30_000, 3_000
    kafka = PrivateKafka(tmp_path / "services")
    kafka.start()
    worker = None
    try:
        admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
        admin.create_topics([NewTopic("feats", 4, 1), NewTopic("feats.dlq", 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=20, batch_size=1 << 19)
        latest: dict[int, float] = {}
        for i in range(n):
            uid, et = i % n_ids, 1000.0 + i
            latest[uid] = et
            producer.send("feats", key=str(uid).encode(), value=orjson.dumps({"id": uid, "et": et, "seq": i}))
        producer.flush()
        producer.close()
        spec = {"name": "feats", "record_identifier": "id", "event_time": "et", "topic": "feats",
                "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"},
                             {"name": "seq", "type": "Integral"}]}
        cfg = tmp_path / "ferry.yaml"
        cfg.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": kafka.bootstrap}, "feature_groups": [spec]}))
        data = tmp_path / "fs"
        worker = subprocess.Popen(
            [sys.executable, "-m", "ferry.cli", "features", "ingest", "-f", str(cfg), "--data-dir", str(data),
             "--max-batch", "500", "--until-idle", "8", "--consumer-group", "restart-test"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        offline = data / "offline" / "feats" / "data"
        deadline = time.time() + 120
        while time.time() < deadline and sum(1 for _ in offline.rglob("*.parquet")) < 8:
            assert worker.poll() is None, worker.stderr.read().decode()[-3000:]
            time.sleep(0.02)
        t0 = time.monotonic()
        kafka.stop()  # mid-stream: the worker has written some batches, not all
        stopped = time.monotonic()
        time.sleep(2.0)
        kafka.start()
        restarted = time.monotonic()
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode()[-3000:]
        done = time.monotonic()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        kafka.stop()
    store = FeatureStore(FeatureStoreSettings(data_dir=str(data)), [FeatureGroupSpec.model_validate(spec)])
    got = store.get_records("feats", [str(i) for i in range(n_ids)])
    assert all(g is not None and g.event_time == latest[i] for i, g in enumerate(got))
    seqs = store.offline(store.group("feats")).read(store.group("feats"), ["seq"]).column("seq").to_pylist()
    lost, twice = n - len(set(seqs)), len(seqs) - len(set(seqs))
    print(f"Kafka broker restart during ingestion of {n} records: stop took {stopped - t0:.1f}s, down 2 s, "
          f"start {restarted - stopped - 2:.1f}s; the worker finished {done - restarted:.1f}s after the broker was "
          f"back; records lost {lost}, written twice {twice}")
    assert lost == 0 and twice == 0
    store.close()
