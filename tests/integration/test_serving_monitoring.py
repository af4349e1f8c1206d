"""The monitor running inside Ferry: scheduled executions over the REST route, gauges on /metrics, and
ground truth posted over HTTP."""

from __future__ import annotations

import json
import time

import httpx

from monitor import ground_truth


def test_scheduled_executions_are_listed_and_exported(ferry_url):
    deadline = time.monotonic() + 60
    executions = []
    while time.monotonic() < deadline and not executions:
        executions = httpx.get(f"{ferry_url}/monitoring/executions", params={"endpoint": "credit-risk"}).json()["executions"]
        time.sleep(1)
    assert executions, "the 3-second data-quality schedule produced no execution within a minute"
    ex = executions[-1]
    assert ex["schedule"] == "dq-every-3s" and ex["monitor_type"] == "data_quality"
    assert ex["status"] in ("Completed", "CompletedWithViolations", "Failed")
    if ex["status"] == "Failed":
        assert ex["failure_reason"]
    text = httpx.get(f"{ferry_url}/metrics").text
    assert 'ferry_monitor_execution_status{' in text and 'schedule="dq-every-3s"' in text
    types = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")]
    assert len(types) == len(set(types)), "a metric family appears twice: Prometheus would reject the scrape"
    assert httpx.get(f"{ferry_url}/monitoring/executions", params={"schedule": "nope"}).json() == {"executions": []}


def test_ground_truth_is_written_for_the_monitors(ferry_url, demo_dir):
    recs = [ground_truth.record(f"gt-{i}", i % 2) for i in range(5)]
    r = httpx.post(f"{ferry_url}/ground-truth", params={"endpoint": "credit-risk"},
                   content="\n".join(json.dumps(x) for x in recs))
    assert r.status_code == 200 and r.json()["written"] == 5
    stored = ground_truth.read(demo_dir / "ground-truth" / "credit-risk")
    assert {f"gt-{i}" for i in range(5)} <= set(stored["joinKey"])
    bad = httpx.post(f"{ferry_url}/ground-truth", json=[{"groundTruthData": {"data": "1"}}])
    assert bad.status_code == 400 and "eventId" in bad.json()["error"]
    assert httpx.post(f"{ferry_url}/ground-truth", content=b"{not json").status_code == 400
    assert httpx.post(f"{ferry_url}/ground-truth", params={"endpoint": "nope"}, json=recs).status_code == 404
