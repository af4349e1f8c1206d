"""The control plane on real Ray Serve: weights change live, through the control API and `ferry weights`,
with no gateway replica restarted and no request failed under steady load."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from subprocess import run

import httpx
import pytest

from monitor.capture_reader import read_capture

ROW = "35,52000,0.25,120,4,9000,0,1"


def gateway_replicas() -> set[str]:
    """The names of the gateway's replica actors (a restarted replica has a new name)."""
    import ray

    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    found = {n for n in names if "ferry#gateway#" in n}
    assert found, sorted(names)
    return found


class Load:
    """Steady requests to an endpoint from a thread; counts answers by variant and by status."""

    def __init__(self, url: str):
        self.url, self.stop = url, threading.Event()
        self.variants: Counter = Counter()
        self.failed: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        with httpx.Client(timeout=30) as c:
            while not self.stop.is_set():
                r = c.post(self.url, content=ROW, headers={"content-type": "text/csv"})
                if r.status_code == 200:
                    self.variants[r.headers["x-amzn-invoked-production-variant"]] += 1
                else:
                    self.failed.append(f"{r.status_code} {r.text[:200]}")
                time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def variants_now(url: str, n: int = 200) -> Counter:
    with httpx.Client(timeout=30) as c:
        return Counter(c.post(url, content=ROW, headers={"content-type": "text/csv"})
                       .headers["x-amzn-invoked-production-variant"] for _ in range(n))


def test_weights_change_live_without_restarts_or_failed_requests(ferry_url):
    url = f"{ferry_url}/endpoints/ab-test/invocations"
    before = gateway_replicas()
    assert httpx.get(f"{ferry_url}/control/traffic").json()["endpoints"]["ab-test"]["weights"] == {"A": 3, "B": 1}
    try:
        with Load(url) as load:
            time.sleep(1)
            r = httpx.put(f"{ferry_url}/control/endpoints/ab-test/weights", json={"weights": {"A": 0, "B": 1}},
                          timeout=60)
            assert r.status_code == 200, r.text
            assert variants_now(url) == Counter({"B": 200})  # the very next requests: applied before the answer
            cli = run([sys.executable, "-m", "ferry.cli", "weights", "ab-test", "A=1", "B=1", "--url", ferry_url],
                      capture_output=True, text=True, timeout=120)
            assert cli.returncode == 0 and "A=1 (50 %)" in cli.stderr, cli.stderr
            split = variants_now(url, 400)
        after = gateway_replicas()
        print(f"\ntwo weight changes under load: {sum(load.variants.values())} requests answered, "
              f"{len(load.failed)} failed; gateway replicas {len(before)} before, the same {len(before & after)} after")
        assert load.failed == [] and sum(load.variants.values()) > 100
        assert 140 < split["A"] < 260  # 50 % within 6 sigma, right after the CLI returned
        assert after == before  # reconfigured in place: no replica restarted
    finally:
        httpx.put(f"{ferry_url}/control/endpoints/ab-test/weights", json={"weights": {"A": 3, "B": 1}}, timeout=60)


@pytest.mark.parametrize("body, status, needle", [
    ({"weights": {"Z": 1}}, 400, "no variant"),
    ({"weights": {"A": -1}}, 400, ">= 0"),
    ({"weights": {"A": 0, "B": 0}}, 400, "positive"),
    ({"nope": 1}, 400, "weights"),
])
def test_bad_weight_changes_are_4xx_and_change_nothing(ferry_url, body, status, needle):
    r = httpx.put(f"{ferry_url}/control/endpoints/ab-test/weights", json=body, timeout=60)
    assert r.status_code == status and needle in r.json()["error"]
    assert httpx.get(f"{ferry_url}/control/traffic").json()["endpoints"]["ab-test"]["weights"] == {"A": 3, "B": 1}
    assert httpx.put(f"{ferry_url}/control/endpoints/nope/weights", json={"weights": {"A": 1}}).status_code == 404


def test_shadows_are_compared_with_production_and_never_fail_the_caller(ferry_url, demo_dir):
    """One shadow of the same model (agrees on every row), one that fails every copy (sampled at 50 %), and the
    same model on its own deployment (`in_process: false`: copies sent through its handle): compared and
    captured like the one in the gateway."""
    url = f"{ferry_url}/endpoints/shadowed/invocations"
    with httpx.Client(timeout=30) as c:
        answers = [c.post(url, content=ROW, headers={"content-type": "text/csv",
                                                     "x-amzn-sagemaker-inference-id": f"s{i}"}) for i in range(200)]
    assert {r.status_code for r in answers} == {200}
    assert {r.headers["x-amzn-invoked-production-variant"] for r in answers} == {"AllTraffic"}
    unshadowed = httpx.post(f"{ferry_url}/endpoints/credit-risk/invocations", content=ROW, timeout=30,
                            headers={"content-type": "text/csv", "x-amzn-sagemaker-target-variant": "AllTraffic"})
    assert {r.text for r in answers} == {unshadowed.text}  # the same model without shadows: unaffected answers
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # gateways report every second
        report = httpx.get(f"{ferry_url}/control/endpoints/shadowed/shadows").json()
        if (min(report["shadows"].get(s, {}).get("copies", 0) for s in ("Same", "Deployed")) >= 200
                and report["production"]["requests"] >= 200):
            break
        time.sleep(0.5)
    same, broken = report["shadows"]["Same"], report["shadows"]["Broken"]
    assert same["copies"] == 200 and same["agreement"] == 1.0 and same["mean_abs_difference"] == 0.0
    deployed = report["shadows"]["Deployed"]
    assert deployed["copies"] == 200 and deployed["agreement"] == 1.0 and deployed["mean_abs_difference"] == 0.0
    assert deployed["dropped"] == 0 and deployed["error_rate"] == 0.0
    assert broken["error_rate"] == 1.0 and 60 < broken["copies"] + broken["dropped"] < 140  # 50 %, 6 sigma
    assert report["production"]["error_rate"] == 0.0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the capture files are flushed every second or so
        captured = read_capture(demo_dir / "shadow-capture")
        if (captured["variant"] == "Deployed").sum() >= 200:
            break
        time.sleep(0.5)
    by_variant = {v: set(g["inferenceId"]) for v, g in captured.groupby("variant")}
    assert len(by_variant["Deployed"]) == 200 and by_variant["Deployed"] == by_variant["AllTraffic"]
    cli = run([sys.executable, "-m", "ferry.cli", "shadow", "report", "shadowed", "--url", ferry_url],
              capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and "Same" in cli.stdout and "100.0 %" in cli.stdout, cli.stdout + cli.stderr
