"""A real Prometheus server (Debian's `prometheus` package, installed by .ci/run) for tests: scrapes the given
targets every second, evaluates the given rule files every second, answers on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def value(self, expr: str) -> float | None:
        res = self.query(expr)
        return float(res[0]["value"][1]) if res else None

    def alerts(self) -> list[dict]:
        return httpx.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]

    def wait_for(self, check, timeout_s: float, what: str):
        """Poll `check()` until it returns something truthy; fail naming `what` after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = check()
            if got:
                return got
            time.sleep(0.5)
        pytest.fail(f"Prometheus at {self.url}: {what} not seen within {timeout_s:.0f} s")


@contextmanager
def prometheus_server(workdir: Path, jobs: dict[str, list[str]], rule_files: list[Path] = (),
                      metrics_path: str = "/metrics"):
    """Run Prometheus scraping `jobs` (job name -> host:port targets, at metrics_path) and evaluating
    `rule_files`."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: .ci/run installs Debian's prometheus package", pytrace=False)
    workdir.mkdir(parents=True, exist_ok=True)
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(p) for p in rule_files],
              "scrape_configs": [{"job_name": job, "metrics_path": metrics_path, "static_configs": [{"targets": targets}]}
                                 for job, targets in jobs.items()]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = open(workdir / "prometheus.log", "w")
    proc = subprocess.Popen([binary, f"--config.file={workdir / 'prometheus.yml'}",
                             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
