"""docs/endpoints.md's runnable examples of a serverless variant and an asynchronous endpoint on the demo,
against the session's Ferry, which has the demo's endpoints plus the two the docs add (same sections)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.test_first_hour import ROOT, runnable_blocks


def test_the_serverless_and_async_examples_run_on_the_demo(ferry_url, demo_dir, tmp_path):
    blocks = [b for b in runnable_blocks(ROOT / "docs" / "endpoints.md")
              if "credit-risk-serverless" in b.text or "credit-risk-async" in b.text]
    assert [(b.lang, b.own_endpoints) for b in blocks] == [("bash", True), ("python", True)]
    port = ferry_url.rsplit(":", 1)[1]
    (tmp_path / "ferry-demo").symlink_to(demo_dir)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    outputs = []
    for b in blocks:
        script = b.text.replace("localhost:8080", f"127.0.0.1:{port}")
        cmd = ["bash", "-euo", "pipefail", "-c", script] if b.lang == "bash" else [sys.executable, "-c", script]
        run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=180)
        assert run.returncode == 0, f"docs/endpoints.md:{b.line}: {run.stdout[-2000:]}\n{run.stderr[-3000:]}"
        outputs.append(run.stdout.strip().splitlines())
    serverless, async_ = outputs
    assert len(serverless) == 2 and all(ln.split(",")[0] in ("0", "1") for ln in serverless), serverless
    assert async_[0] == "Completed" and len(async_) == 6, async_
    assert all(ln.split(",")[0] in ("0", "1") for ln in async_[1:]), async_
