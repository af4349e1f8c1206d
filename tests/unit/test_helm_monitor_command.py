"""The chart's monitor Deployment, run here: its rendered command, environment and mounted files (ferry.yaml and
a baseline from the ConfigMap at baseDir) start `ferry monitor run`, which runs the schedule and serves the
ferry_monitor_* metrics its probes and the ServiceMonitor read."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time

import httpx
import yaml

from tests.helm import materialize, one, template
from tests.models import identity_model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_monitor_deployment_command_runs_the_schedule_and_serves_metrics(tmp_path):
    port = _free_port()
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    values = {
        "ferry": {
            "models": [{"name": "m", "path": "model.onnx"}],
            "endpoints": [{"name": "credit-risk", "variants": [{"name": "AllTraffic", "model": "m"}]}],
            "monitoring_schedules": [{"name": "dq", "endpoint": "credit-risk", "interval_s": 1,
                                      "window_start_offset_s": 60, "baseline": "baselines/dq"}],
        },
        "files": {"model.onnx": b64(identity_model()), "baselines/dq/statistics.json": b64(b"{}"),
                  "baselines/dq/constraints.json": b64(b'{"features": []}')},
        "storage": {"enabled": True},
        "monitor": {"metricsPort": port},
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    base = tmp_path / "srv"
    docs = template(tmp_path / "values.yaml", sets=(f"baseDir={base}",))
    command, env = materialize(docs, "Deployment", "ferry-monitor")
    assert (base / "ferry.yaml").is_file() and (base / "baselines" / "dq" / "constraints.json").is_file()
    assert "--metrics-host=0.0.0.0" in command  # a pod's address; here loopback only
    command = [a.replace("--metrics-host=0.0.0.0", "--metrics-host=127.0.0.1") for a in command]
    container = one(docs, "Deployment", "ferry-monitor")["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    log = (tmp_path / "monitor.log").open("w")
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    sample = 'ferry_monitor_last_execution_timestamp_seconds{endpoint="credit-risk",schedule="dq"}'
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline and sample not in text:
            assert proc.poll() is None, (tmp_path / "monitor.log").read_text()
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert sample in text, (tmp_path / "monitor.log").read_text()[-2000:]
        assert 'ferry_monitor_execution_status{endpoint="credit-risk",schedule="dq"' in text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
