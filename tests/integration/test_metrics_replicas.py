"""Two gateway replicas (separate processes): whichever one answers GET /metrics, Prometheus gets both
replicas' series, and the requests counted across them add up to the requests sent; both replaced under load
(a rolling update behind HAProxy, with Ferry's short drain) fail no request."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ferry.config import parse_config
from ferry.demo import demo_config
from tests.prometheus_server import prometheus_server

ROW = "35,50000,0.3,60,3,10000,1,0"
BURST, MAX_SENT = 64, 1024


def _deploy_two_gateways(port: int, demo_dir: Path, gateway_num_cpus: float) -> None:
    from ferry.app import application
    from serving.deploy import deploy

    doc = demo_config()
    doc["server"].update(http_port=port, gateway_replicas=2, gateway_num_cpus=gateway_num_cpus)
    doc["endpoints"][0]["name"] = "two-gw"
    cfg = parse_config(doc, base=demo_dir, environ={})
    deploy(application(cfg, demo_dir), timeout_s=240, app_name="ferry-two-gateways", route_prefix="/two")


@pytest.fixture(scope="module")
def two_gateways(ray_serve, demo_dir):
    import ray
    from ray import serve

    _deploy_two_gateways(ray_serve, demo_dir, 0.25)
    yield f"http://127.0.0.1:{ray_serve}/two"
    serve.delete("ferry-two-gateways")
    ray.kill(ray.get_actor("ferry-metrics-hub-ferry-two-gateways", namespace="ferry"))  # detached: outlives the app


def _burst(url: str) -> None:
    """BURST requests, 8 at a time (concurrent requests are spread over the replicas)."""
    def one(_):
        with httpx.Client(timeout=30) as c:
            r = c.post(f"{url}/endpoints/two-gw/invocations", content=ROW, headers={"content-type": "text/csv"})
            assert r.status_code == 200, r.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(BURST)))


def _served_by_replica(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "ferry_invocations_total" and s.labels.get("endpoint") == "two-gw":
                out[s.labels["replica"]] = out.get(s.labels["replica"], 0) + s.value
    return out


def test_counts_of_both_replicas_add_up_to_the_requests_sent(two_gateways, tmp_path: Path):
    sent = 0
    while sent < MAX_SENT:  # until both replicas have served (Serve's routing decides which one does)
        _burst(two_gateways)
        sent += BURST
        served = _served_by_replica(two_gateways)
        if len(served) == 2 and all(served.values()):
            break
    assert len(served) == 2 and all(served.values()), f"after {sent} requests, served by replica: {served}"
    target = two_gateways.removeprefix("http://").split("/")[0]
    with prometheus_server(tmp_path / "prom", {"ferry": [target]}, metrics_path="/two/metrics") as prom:
        total = 'sum(ferry_invocations_total{endpoint="two-gw"})'
        prom.wait_for(lambda: prom.value(total) == sent, 30, f"{sent} requests counted across the replicas")
        per_replica = prom.query('sum by (replica) (ferry_invocations_total{endpoint="two-gw"})')
        assert len(per_replica) == 2 and all(float(r["value"][1]) > 0 for r in per_replica), per_replica
        assert sum(float(r["value"][1]) for r in per_replica) == sent
        counts = prom.query('sum(ferry_request_latency_seconds_count{endpoint="two-gw"})')
        assert float(counts[0]["value"][1]) == sent


def _replica_actors() -> set[str]:
    """Names of the live gateway replicas of the app (Ray Serve names each replica's actor)."""
    import ray

    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if "ferry-two-gateways#gateway#" in a["name"]}


def test_both_gateways_replaced_under_load_fail_no_request(two_gateways, ray_serve, demo_dir):
    """A rolling update of both gateway replicas (a new num_cpus restarts them) while requests flow: each old
    replica drains for server.drain_seconds, then refuses new connections, which HAProxy retries elsewhere."""
    before = _replica_actors()
    assert len(before) == 2, before
    answered, failed, stop = [], [], threading.Event()

    def load():
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                try:
                    r = c.post(f"{two_gateways}/endpoints/two-gw/invocations", content=ROW,
                               headers={"content-type": "text/csv"})
                    (answered if r.status_code == 200 else failed).append(r.status_code)
                except httpx.TransportError as e:
                    failed.append(repr(e))

    threads = [threading.Thread(target=load, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        _deploy_two_gateways(ray_serve, demo_dir, 0.2)  # returns once the new replicas run
        deadline = time.monotonic() + 60
        while before & _replica_actors() and time.monotonic() < deadline:
            time.sleep(0.5)  # the old replicas drain, then stop
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    after = _replica_actors()
    print(f"rolling update: {len(answered)} answered, {len(failed)} failed; replicas {sorted(before)} -> {sorted(after)}")
    assert not before & after, f"old gateway replicas still alive: {before & after}"
    assert len(after) == 2 and len(answered) > 100 and failed == [], failed[:10]
