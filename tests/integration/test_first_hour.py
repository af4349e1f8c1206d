"""The first hour of a new user (issue 10), in a fresh clone and a fresh venv:

- `pip install -e .`, then each client the README names, one at a time, leaves Ferry's protobuf runtime
  alone (pip's own --dry-run report says what each install would change), and Ray Serve's gRPC reflection,
  Ferry's stubs and the client still import together; `-e . 'tritonclient[all]' boto3` resolves together
  to the current tritonclient, inside the protobuf range pyproject.toml pins (items 1 and 2);
- every fenced block of README.md and docs/*.md marked runnable runs as written, against `ferry demo`
  started as the README's quick start says (items 5 and 6), and the demo's monitor finds the drift the
  README promises; on that same demo, the CLI's own monitor agrees, boto3, tritonclient (gRPC and HTTP) and
  httpx answer, a second Ferry on the port is refused at once, and start-up and Ctrl-C stay quiet (items 3,
  4 and 6).

Runnable blocks: ```bash runnable``` and ```python runnable``` run in the clone's folder with the fresh
venv first on PATH and must exit 0; ```bash runnable background``` starts a server that the later blocks
use (stopped with Ctrl-C at the end; it must exit 0 too). The demo's ports (8080, 9000) are swapped for
free ones in the blocks' text and through FERRY_* variables, so the test never collides with another Ferry.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from ferry.demo import BASELINE_DIR
from ferry.demo_traffic import DRIFT_FEATURE
from tests.integration.conftest import free_port

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
    plan = _dry_run(venv, "--ignore-installed", "-e", f"{clone}[clients]", "tritonclient[all]", "boto3")
    assert {"boto3", "tritonclient", "httpx"} <= set(plan)  # the [clients] extra the README installs
    protobuf = Version(plan["protobuf"]["version"])
    assert protobuf in _pinned_protobuf().specifier
    needs = [Requirement(r) for r in plan["tritonclient"].get("requires_dist", [])]
    on_protobuf = [r for r in needs if r.name == "protobuf"]
    # an old tritonclient without a protobuf range (CI's resolver fell back to 2.41) hides the conflict
    # users meet with the current one
    assert on_protobuf, f"resolved tritonclient {plan['tritonclient']['version']}, which predates its protobuf range"
    assert all(protobuf in r.specifier for r in on_protobuf)


CLIENT_CALLS = """
import sys
import boto3, httpx, numpy as np, tritonclient.grpc as tg, tritonclient.http as th
http, grpc_port = sys.argv[1], sys.argv[2]
row = np.array([[35, 52000, 0.25, 120, 4, 9000, 0, 1]], dtype=np.float32)
rt = boto3.client("sagemaker-runtime", endpoint_url=f"http://127.0.0.1:{http}", region_name="us-east-1",
                  aws_access_key_id="x", aws_secret_access_key="x")
assert rt.invoke_endpoint(EndpointName="credit-risk", ContentType="text/csv",
                          Body="35,52000,0.25,120,4,9000,0,1")["Body"].read().count(b",") == 2
assert httpx.get(f"http://127.0.0.1:{http}/v2/models/credit-risk/ready").status_code == 200
for mod, url in ((tg, f"127.0.0.1:{grpc_port}"), (th, f"127.0.0.1:{http}")):
    x = mod.InferInput("input", [1, 8], "FP32")
    x.set_data_from_numpy(row)
    p = mod.InferenceServerClient(url).infer("credit-risk", [x]).as_numpy("probabilities")
    assert p.shape == (1, 2) and abs(float(p.sum()) - 1) < 1e-5, p
print("clients ok")
"""


# ---- runnable documentation --------------------------------------------------------------------------

FENCE = re.compile(r"^```(\S*)[ \t]*(.*)$")


@dataclass
class Block:
    doc: str
    line: int
    lang: str
    background: bool
    own_endpoints: bool  # needs endpoints its page adds to the demo's deploy file (run by that page's test)
    text: str


def runnable_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a markdown file whose info string is `<bash|python> runnable [background]
    [own-endpoints]`."""
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
            blocks.append(Block(path.name, i + 1, m.group(1), "background" in words[1:], "own-endpoints" in words[1:],
                                "\n".join(lines[i + 1:end])))
        i = end + 1
    return blocks


def test_runnable_blocks_are_found():
    blocks = [b for d in DOCS for b in runnable_blocks(d)]
    assert [b.doc for b in blocks if b.background] == ["README.md"]  # the quick start's `ferry demo`
    assert {b.doc for b in blocks} >= {"README.md", "monitor.md", "clarify.md"}


def _script(block: Block, ports: dict[str, int], folder: Path, python: Path) -> list[str]:
    text = block.text
    for default, port in ports.items():
        text = re.sub(rf"(localhost|127\.0\.0\.1):{default}\b", rf"\g<1>:{port}", text)
    path = folder / f"{block.doc}-{block.line}.{'sh' if block.lang == 'bash' else 'py'}"
    path.write_text(text + "\n")
    return ["bash", "-e", "-o", "pipefail", str(path)] if block.lang == "bash" else [str(python), str(path)]


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the quick start exited ({proc.returncode}):\n{log.read_text()[-4000:]}"
        try:
            if httpx.get(f"{url}/v2/models/credit-risk/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise AssertionError(f"the quick start's Ferry did not answer within {timeout_s} s:\n{log.read_text()[-4000:]}")


def test_readme_quick_start_and_every_runnable_block(venv, clone):
    http, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FERRY_", "VIRTUAL_ENV", "PYTHONPATH", "RAY_"))}  # a user's shell, not the session Ray's
    env |= {"PATH": f"{venv / 'bin'}:{env.get('PATH', '')}", "VIRTUAL_ENV": str(venv), "FERRY_URL": url,
            "FERRY_SERVER__HTTP_PORT": str(http), "FERRY_SERVER__GRPC_PORT": str(grpc_port)}
    ports = {8080: http, 9000: grpc_port}
    scripts = clone.parent / "blocks"
    scripts.mkdir()
    blocks = [b for d in DOCS for b in runnable_blocks(clone / d.relative_to(ROOT)) if not b.own_endpoints]
    servers: list[tuple[subprocess.Popen, Path]] = []
    try:
        for block in blocks:
            cmd = _script(block, ports, scripts, venv / "bin" / "python")
            if block.background:
                log = scripts / f"{block.doc}-{block.line}.log"
                proc = subprocess.Popen(cmd, cwd=clone, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
                servers.append((proc, log))
                _wait_ready(url, proc, log, timeout_s=900)
                continue
            r = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
            assert r.returncode == 0, (f"{block.doc}:{block.line} failed ({r.returncode}):\n{block.text}\n"
                                       f"--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}")
        (proc, log) = servers[0]
        deadline = time.monotonic() + 240
        while "monitor:" not in log.read_text() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(2)
        found = re.search(r"monitor: .*", log.read_text())
        assert found and f"{DRIFT_FEATURE} (baseline_drift_check)" in found.group(0) \
            and "CompletedWithViolations" in found.group(0), log.read_text()[-3000:]
        _the_demo_as_the_readme_tells_it(clone / "ferry-demo", url, grpc_port, venv, env)
    finally:
        for proc, _ in servers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        codes = []
        for proc, log in servers:
            try:
                codes.append(proc.wait(timeout=150))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
    assert codes == [0] * len(servers), [log.read_text()[-3000:] for _, log in servers]
    out = servers[0][1].read_text()
    assert "shutting down" in out
    for noise in ("graceful_shutdown", "(ServeController", "(ProxyActor", "Traceback", "VersionError"):
        assert noise not in out, f"{noise!r} in the quick start's output:\n{out[-4000:]}"
    assert f"SageMaker: POST {url}/endpoints/credit-risk/invocations   KServe V2: POST " \
           f"{url}/v2/models/credit-risk/infer" in out  # not wrapped though stdout is a file


def _the_demo_as_the_readme_tells_it(demo: Path, url: str, grpc_port: int, venv: Path, env: dict) -> None:
    """On the quick start's running demo: the monitor's flagged execution names the drifted feature alone, the
    traffic posted ground truth, `ferry monitor data-quality` agrees, every client the quick start installed
    answers, and a second Ferry on the same port is refused at once, saying why."""
    ferry, python = str(venv / "bin" / "ferry"), str(venv / "bin" / "python")
    executions = httpx.get(f"{url}/monitoring/executions", timeout=10).json()["executions"]
    flagged = [e for e in executions if e["status"] == "CompletedWithViolations"]
    assert flagged, executions
    violations = json.loads((demo / flagged[-1]["path"] / "constraint_violations.json").read_text())["violations"]
    assert [v["feature_name"] for v in violations] == [DRIFT_FEATURE]
    assert list((demo / "ground-truth" / "credit-risk").rglob("*.jsonl")), "the traffic posted no ground truth"

    r = _run([ferry, "monitor", "data-quality", "--baseline", str(demo / BASELINE_DIR), "--data", str(demo / "capture"),
              "--out", str(demo.parent / "dq")], 120, env=env)
    assert [v["feature_name"] for v in json.loads(r.stdout)["violations"]] == [DRIFT_FEATURE]

    r = _run([python, "-c", CLIENT_CALLS, url.rsplit(":", 1)[1], str(grpc_port)], 120, env=env)
    assert "clients ok" in r.stdout

    started = time.monotonic()
    r = subprocess.run([ferry, "up", "-f", str(demo / "ferry.yaml")], capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 2 and time.monotonic() - started < 60, r.stderr
    assert f"port {url.rsplit(':', 1)[1]} (server.http_port)" in r.stderr and "haproxy" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def run_block(b: Block, ferry_url: str, demo_dir: Path, cwd: Path, timeout: float = 180) -> str:
    """Run a runnable block as a user would from the repository's folder, against a demo served at `ferry_url`
    whose folder is `demo_dir` (linked as ./ferry-demo); its stdout, after asserting that it succeeded."""
    port = ferry_url.rsplit(":", 1)[1]
    if not (cwd / "ferry-demo").exists():
        (cwd / "ferry-demo").symlink_to(demo_dir)
    env = {**os.environ, "FERRY_URL": ferry_url, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    script = b.text.replace("localhost:8080", f"127.0.0.1:{port}").replace("127.0.0.1:8080", f"127.0.0.1:{port}")
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", script] if b.lang == "bash" else [sys.executable, "-c", script],
                       cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{b.doc}:{b.line} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r.stdout
