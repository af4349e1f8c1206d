"""The monitor's memory follows the records in an execution's window, not the capture files it reads, and a
long-lived process running executions one after another stays flat (the soak's monitor replica grew with every
execution before). The executions run in one fresh Python process, as the monitor service runs them, after a
warm-up execution on a tiny capture (imports, first-use allocations): an execution's peak is the process's RSS
high-water mark (VmHWM, reset before it through /proc/self/clear_refs) above its RSS before it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ferry.demo import make_credit_data, model_frame
from monitor.jobs import baseline_data_quality
from tests.capture_traffic import write_traffic

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
RATE = 100  # records per second
N = 30_000  # five minutes of traffic, one file

SCRIPT = r"""
import json, sys
from datetime import datetime, timedelta
from monitor.runner import run_once
from monitor.service import release_memory, system_allocator_for_arrow
from monitor.spec import MonitoringScheduleSpec

root, t0, runs = sys.argv[1], datetime.fromisoformat(sys.argv[2]), json.loads(sys.argv[3])

def spec(capture, window):
    return MonitoringScheduleSpec(name="dq", endpoint="credit-risk", monitor_type="data_quality",
                                  window_start_offset_s=window, baseline=root + "/baseline",
                                  capture=root + "/" + capture, output=root + "/out")

def status_mb(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":")) / 1024

system_allocator_for_arrow()  # as the monitor service does when it starts
run_once(spec("tiny", 60), t0 + timedelta(seconds=30))  # warm-up: imports, first-use allocations
release_memory()
out = []
for end_s, window in runs:
    before = status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    ex = run_once(spec("capture", window), t0 + timedelta(seconds=end_s))
    peak = status_mb("VmHWM")
    release_memory()  # what the monitor service does after each execution
    out.append({"status": ex.status, "items": ex.item_count, "peak_growth_mb": peak - before,
                "rss_mb": status_mb("VmRSS")})
print(json.dumps(out))
"""


SLIDING = [(60 + 20 * k, 60) for k in range(12)]  # (window end in seconds after T0, window length in seconds)
WHOLE, TAIL = (N / RATE, N / RATE + 1), (N / RATE, N / RATE / 10)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> tuple[float, list[dict]]:
    """The capture's size in MB, and what each execution of SLIDING, WHOLE and TAIL measured (one process)."""
    root = tmp_path_factory.mktemp("monitor-memory")
    baseline_data_quality(model_frame(make_credit_data(500, seed=7)), root / "baseline")
    write_traffic(root / "tiny", "credit-risk", T0, 200, per_second=RATE)
    write_traffic(root / "capture", "credit-risk", T0, N, per_second=RATE)
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(root), T0.isoformat(), json.dumps(SLIDING + [WHOLE, TAIL])],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    found = json.loads(r.stdout.strip().splitlines()[-1])
    assert all(ex["status"] == "Completed" for ex in found), found
    return sum(f.stat().st_size for f in (root / "capture").rglob("*.jsonl")) / 2**20, found


def test_peak_follows_the_window_not_the_files(measured):
    """The whole capture (30,000 records, 20 MB of JSONL in one file) in the window, then its last 10 %: the
    peak follows the window's records, about 16 MB and 2 MB here (before: every file of
    the window's hours read whole and parsed, 105 MB for either window, 5 times the files)."""
    files, found = measured
    whole, tail = found[-2:]
    assert whole["items"] == N and tail["items"] == N // 10
    print(f"capture {files:.1f} MB; peak growth of an execution: {whole['peak_growth_mb']:.1f} MB for {N} records, "
          f"{tail['peak_growth_mb']:.1f} MB for {N // 10}")
    assert whole["peak_growth_mb"] < 2.0 * files, whole
    assert tail["peak_growth_mb"] < 0.5 * files, tail


def test_executions_one_after_another_stay_flat(measured):
    """Twelve executions of a sliding 60-second window (6,000 records each) in one process: the RSS between
    executions at the end is within a few MB of the start (before: 1.5-2 MB more after every one, +14 MB)."""
    found = measured[1][:len(SLIDING)]
    rss = [ex["rss_mb"] for ex in found]
    print("RSS between executions (MB):", [round(x, 1) for x in rss])
    assert all(ex["items"] == 6000 for ex in found)
    assert max(rss[-3:]) - min(rss[1:4]) < 4.0, rss
