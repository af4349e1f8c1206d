"""The first hour of a new user (issue 10), in a fresh clone and a fresh venv:

- `pip install -e .`, then each client the README names, one at a time, leaves Ferry's protobuf runtime
  alone (pip's own --dry-run report says what each install would change), and Ray Serve's gRPC reflection,
  Ferry's stubs and the client still import together; `-e . 'tritonclient[all]' boto3` resolves together
  to the current tritonclient, inside the protobuf range pyproject.toml pins (items 1 and 2);
- README.md and docs/*.md mark runnable blocks (the test that runs them against the quick start's demo
  comes with the monitor's reader of gRPC captures, which the README's tritonclient snippet produces).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CLIENTS = ["boto3", "tritonclient[all]", "httpx"]  # as the README names them, installed one at a time
RUNTIME = ("protobuf", "grpcio", "grpcio-reflection", "ray")  # what a client must not move under Ferry
IMPORTS = ("import ray; from ray import serve; from grpc_reflection.v1alpha import reflection; "
           "import serving.protos.inference_pb2_grpc, serving.deploy")


def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """A fresh clone of this repository's HEAD: what a new user has."""
    repo = tmp_path_factory.mktemp("first-hour") / "ferry"
    _run(["git", "clone", "-q", str(ROOT), str(repo)], 120)
    return repo


@pytest.fixture(scope="module")
def venv(clone) -> Path:
    """A fresh venv with `pip install -e .` (no extras), from pip's cache where it can."""
    env_dir = clone.parent / "venv"
    _run([sys.executable, "-m", "venv", str(env_dir)], 120)
    _run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(clone)], 1200)
    return env_dir


def _dry_run(venv: Path, *args: str) -> dict[str, dict]:
    """pip's answer for `pip install *args` in venv, without installing: {name: metadata} of what it would install."""
    report = venv.parent / "pip-report.json"
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--dry-run", "--report", str(report), *args], 600)
    return {i["metadata"]["name"].lower(): i["metadata"] for i in json.loads(report.read_text())["install"]}


def _pinned_protobuf() -> Requirement:
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if Requirement(d).name == "protobuf"]
    return req


def test_each_client_installed_after_ferry_leaves_its_runtime_alone(venv):
    python = str(venv / "bin" / "python")
    _run([python, "-c", IMPORTS], 120)
    for client in CLIENTS:
        moved = sorted(set(_dry_run(venv, client)) & set(RUNTIME))
        assert not moved, f"`pip install {client}` after `pip install -e .` would change {moved}"
        _run([python, "-m", "pip", "install", "-q", client], 900)
        _run([python, "-c", IMPORTS], 120)  # the VersionError of issue 10 item 2 was raised here
    _run([python, "-c", "import boto3, httpx, tritonclient.grpc, tritonclient.http"], 120)


def test_ferry_and_every_client_resolve_together_to_the_current_tritonclient(venv, clone):
    plan = _dry_run(venv, "--ignore-installed", "-e", str(clone), "tritonclient[all]", "boto3")
    protobuf = Version(plan["protobuf"]["version"])
    assert protobuf in _pinned_protobuf().specifier
    needs = [Requirement(r) for r in plan["tritonclient"].get("requires_dist", [])]
    on_protobuf = [r for r in needs if r.name == "protobuf"]
    # an old tritonclient without a protobuf range (CI's resolver fell back to 2.41) hides the conflict
    # users meet with the current one
    assert on_protobuf, f"resolved tritonclient {plan['tritonclient']['version']}, which predates its protobuf range"
    assert all(protobuf in r.specifier for r in on_protobuf)


# ---- runnable documentation --------------------------------------------------------------------------

FENCE = re.compile(r"^```(\S*)[ \t]*(.*)$")


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    background: bool
    text: str


def runnable_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a markdown file whose info string is `<bash|python> runnable [background]`."""
    blocks, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        words = m.group(2).split()
        if words[:1] == ["runnable"]:
            assert m.group(1) in ("bash", "python"), f"{path.name}:{i + 1}: runnable blocks are bash or python"
            blocks.append(Block(path.name, i + 1, m.group(1), "background" in words[1:], "\n".join(lines[i + 1:end])))
        i = end + 1
    return blocks


def test_runnable_blocks_are_found():
    blocks = [b for d in DOCS for b in runnable_blocks(d)]
    assert [b.doc for b in blocks if b.background] == ["README.md"]  # the quick start's `ferry demo`
    assert {b.doc for b in blocks} >= {"README.md", "monitor.md", "clarify.md"}
