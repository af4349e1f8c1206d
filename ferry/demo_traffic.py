"""`ferry demo --traffic`: a small, bounded load on the demo endpoint that ends in a drifted segment.

1. NORMAL single-row requests of test applicants, each with its own inference id; the true label of the
   first half is posted to POST /ground-truth, as a labelling process would.
2. DRIFTED_REQUESTS requests of DRIFTED_ROWS rows each whose `income` is cut to DRIFT_FACTOR of itself
   (a recession); every other feature keeps its distribution. The demo's data-quality schedule flags
   `income`, and `ferry monitor data-quality` on the capture agrees.

Requests go over the SageMaker runtime route to Ferry's own (loopback) address, a few at a time.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ferry.demo import ENDPOINT, LABEL, SCHEDULE, model_frame

log = logging.getLogger(__name__)
NORMAL = 200
DRIFTED_REQUESTS, DRIFTED_ROWS = 50, 20
DRIFT_FEATURE, DRIFT_FACTOR = "income", 0.4
CONCURRENCY = 4


@dataclass
class TrafficResult:
    requests: int
    rows: int
    drifted_rows: int
    failed: int
    ground_truth: int


def drifted(rows: pd.DataFrame) -> pd.DataFrame:
    """The same applicants with DRIFT_FEATURE cut to DRIFT_FACTOR of itself."""
    out = rows.copy()
    out[DRIFT_FEATURE] = (out[DRIFT_FEATURE] * DRIFT_FACTOR).round(2)
    return out


def _csv(rows: pd.DataFrame) -> str:
    return rows.to_csv(header=False, index=False)


def send_traffic(url: str, demo_dir: str | Path, token: str | None = None, timeout_s: float = 30.0) -> TrafficResult:
    """Send the normal segment, its ground truth, then the drifted segment; return what was sent."""
    import httpx

    test = pd.read_csv(Path(demo_dir) / "test.csv")
    rows = model_frame(test)
    run = time.strftime("%Y%m%dT%H%M%S")
    ids = [f"demo-{run}-{a}" for a in test["applicant_id"].head(NORMAL)]
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    invoke = f"{url.rstrip('/')}/endpoints/{ENDPOINT}/invocations"
    shifted = drifted(rows)
    bodies = [(_csv(rows.iloc[[i % len(rows)]]), ids[i]) for i in range(NORMAL)]
    for i in range(DRIFTED_REQUESTS):
        start = (i * DRIFTED_ROWS) % len(rows)
        bodies.append((_csv(shifted.iloc[start:start + DRIFTED_ROWS]), None))
    with httpx.Client(timeout=timeout_s, headers=auth) as client:
        def call(item: tuple[str, str | None]) -> bool:
            body, inference_id = item
            headers = {"Content-Type": "text/csv"}
            if inference_id:
                headers["X-Amzn-SageMaker-Inference-Id"] = inference_id
            try:
                return client.post(invoke, content=body, headers=headers).status_code == 200
            except httpx.HTTPError as err:
                log.warning("demo traffic: %s", err)
                return False

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            normal_ok = list(pool.map(call, bodies[:NORMAL]))
            labelled = [{"groundTruthData": {"data": str(int(y)), "encoding": "CSV"},
                         "eventMetadata": {"eventId": i}, "eventVersion": "0"}
                        for i, y, ok in zip(ids[: NORMAL // 2], test[LABEL], normal_ok) if ok]
            posted = _post_ground_truth(client, url, labelled)
            drift_ok = list(pool.map(call, bodies[NORMAL:]))
    n_rows = sum(b.count("\n") for b, _ in bodies)
    return TrafficResult(len(bodies), n_rows, DRIFTED_REQUESTS * DRIFTED_ROWS,
                         normal_ok.count(False) + drift_ok.count(False), posted)


def _post_ground_truth(client, url: str, records: list[dict]) -> int:
    if not records:
        return 0
    resp = client.post(f"{url.rstrip('/')}/ground-truth", params={"endpoint": ENDPOINT}, json=records)
    if resp.status_code >= 300:
        log.warning("demo traffic: ground truth refused: %s %s", resp.status_code, resp.text)
        return 0
    return len(records)


def wait_for_violations(url: str, timeout_s: float = 120.0, token: str | None = None) -> dict | None:
    """The first execution of the demo's schedule that reports violations, with them; on timeout the latest
    execution (None when none ran).

    Executions come from GET /monitoring/executions; their violations from the execution's folder, which
    is on this machine."""
    import httpx

    from monitor.runner import show_execution

    auth = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout_s
    latest = None
    while time.monotonic() < deadline:
        try:
            found = httpx.get(f"{url.rstrip('/')}/monitoring/executions", params={"schedule": SCHEDULE},
                              headers=auth, timeout=10).json()["executions"]
        except (httpx.HTTPError, ValueError, KeyError):
            found = []
        hits = [ex for ex in found if ex.get("violation_count")]
        if hits:
            return show_execution(hits[-1]["path"])
        latest = found[-1] if found else latest
        time.sleep(2)
    return latest
