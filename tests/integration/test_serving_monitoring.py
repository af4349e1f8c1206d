"""The monitor running inside Ferry: scheduled executions over the REST route, gauges on /metrics, and
ground truth posted over HTTP."""

from __future__ import annotations

import json
import time

from datetime import datetime, timedelta, timezone

import httpx
import pandas as pd

from ferry.demo import model_matrix
from monitor import ground_truth
from monitor.runner import run_once
from monitor.spec import MonitoringScheduleSpec


def _executions(ferry_url, **params) -> list[dict]:
    return httpx.get(f"{ferry_url}/monitoring/executions", params=params).json()["executions"]


def test_scheduled_executions_are_listed_and_exported(ferry_url, demo_dir, tmp_path):
    """Traffic captured, then the 3-second data-quality schedule must check it: a window that holds rows is
    Completed or CompletedWithViolations (never Failed), with the status, rows and violations that the same
    window checked directly by monitor.runner gives."""
    rows = model_matrix(pd.read_csv(demo_dir / "test.csv").head(60))
    body = "\n".join(",".join(repr(float(v)) for v in r) for r in rows)
    for i in range(0, 60, 10):
        r = httpx.post(f"{ferry_url}/endpoints/credit-risk/invocations", headers={"content-type": "text/csv"},
                       content="\n".join(body.splitlines()[i:i + 10]))
        assert r.status_code == 200, r.text
    sent = datetime.now(timezone.utc) + timedelta(seconds=2)  # the capture sink flushes every 0.5 s
    deadline = time.monotonic() + 60
    ex = None
    while time.monotonic() < deadline and ex is None:
        done = [e for e in _executions(ferry_url, endpoint="credit-risk")
                if datetime.fromisoformat(e["window_end"].replace("Z", "+00:00")) >= sent]
        ex = done[0] if done else None
        time.sleep(1)
    assert ex is not None, "the 3-second data-quality schedule checked no window after the traffic within a minute"
    assert ex["schedule"] == "dq-every-3s" and ex["monitor_type"] == "data_quality"
    assert ex["status"] in ("Completed", "CompletedWithViolations"), ex["failure_reason"]
    assert ex["failure_reason"] is None and ex["item_count"] >= 60

    spec = MonitoringScheduleSpec(name="dq-every-3s", endpoint="credit-risk", monitor_type="data_quality",
                                  window_start_offset_s=600, baseline=str(demo_dir / "dq-baseline"),
                                  capture=str(demo_dir / "capture"), output=str(tmp_path))
    direct = run_once(spec, datetime.fromisoformat(ex["window_end"].replace("Z", "+00:00")))
    assert (direct.status, direct.item_count, direct.violation_count) == (
        ex["status"], ex["item_count"], ex["violation_count"])

    text = httpx.get(f"{ferry_url}/metrics").text
    assert 'ferry_monitor_execution_status{' in text and 'schedule="dq-every-3s"' in text
    types = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")]
    assert len(types) == len(set(types)), "a metric family appears twice: Prometheus would reject the scrape"
    assert _executions(ferry_url, schedule="nope") == []


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
