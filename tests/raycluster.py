"""A Ray cluster of several nodes on this machine, started with `ray start` as a user starts one: a head and
workers, each node its own processes with its own logical resources, ports and temp dir.

Each node runs `ray start --block` in its own process group with an environment free of this process's RAY_*
settings (a test session's Ray puts its own there), with Ray's token authentication on and a token of its own
(`env` holds it: drivers joining the cluster need it too). Stopping a node ends its process group, then any process
left that names its temp dir; `ray stop` is never used (it stops every Ray of the machine).

    with RayCluster(Path(tempfile.mkdtemp(dir="/var/tmp"))) as cluster:
        cluster.add_node(num_cpus=2)          # the head
        cluster.add_node(num_cpus=2)          # a worker
        cluster.wait_for_nodes(2)
        subprocess.run(["ferry", "up", "--address", cluster.address], env=cluster.env)
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    """A port free on every address: Ray's gRPC proxy binds [::], and Ray's own workers hold ports on the node's
    address, which a probe of 127.0.0.1 alone does not see (the probe socket never listens)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any RAY_* variable, plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, **extra}


def _pids_naming(marker: str) -> list[int]:
    out = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            out.append(int(pid))
    return out


def stop_process_group(proc: subprocess.Popen, marker: str | None = None, grace_s: float = 20) -> None:
    """End a process started in its own session: its group (SIGTERM, then SIGKILL after `grace_s`), then any
    process whose command line holds `marker` (a temp dir of ours: Ray's daemons leave the group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in _pids_naming(marker) if marker else ():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class RayNode:
    temp_dir: Path
    proc: subprocess.Popen
    head: bool

    def raylet_pid(self) -> int:
        """The pid of this node's raylet."""
        for pid in _pids_naming(str(self.temp_dir)):
            try:
                if Path(os.readlink(f"/proc/{pid}/exe")).name == "raylet":
                    return pid
            except OSError:
                continue
        raise RuntimeError(f"no raylet of the node in {self.temp_dir}")

    def stop(self) -> None:
        # a throwaway node: 5 s for `ray start --block` to end its daemons, then they are killed
        stop_process_group(self.proc, str(self.temp_dir), grace_s=5)


@dataclass
class RayCluster:
    """Nodes started in `root` (keep it short: Ray's socket paths must fit in 107 bytes), with `extra_env` in
    their environment."""

    root: Path
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    extra_env: dict[str, str] = field(default_factory=dict)
    nodes: list[RayNode] = field(default_factory=list)
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)

    @property
    def env(self) -> dict[str, str]:
        """The environment of the cluster's processes, and of a driver joining it."""
        return clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, **self.extra_env)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def add_node(self, num_cpus: int, resources: str | None = None) -> RayNode:
        """Start the head (the first node) or a worker joining it, with `num_cpus` logical CPUs."""
        head = not self.nodes
        temp_dir = self.root / f"n{len(self.nodes)}"
        args = [RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={num_cpus}",
                f"--temp-dir={temp_dir}", "--object-store-memory=100000000", "--disable-usage-stats",
                f"--dashboard-agent-listen-port={free_port()}", f"--metrics-export-port={free_port()}"]
        if resources:
            args.append(f"--resources={resources}")
        if head:
            args += ["--head", f"--port={self.gcs_port}", "--dashboard-host=127.0.0.1",
                     f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={free_port()}"]
        else:
            args.append(f"--address={self.address}")
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"n{len(self.nodes)}.log", "w")
        proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=self.root)
        node = RayNode(temp_dir, proc, head)
        self.nodes.append(node)
        return node

    def state(self, kind: str, **filters: str) -> list[dict]:
        """Ray's state API over the dashboard (GET /api/v0/<kind>), with equality filters."""
        params = [("limit", "10000"), ("detail", "true")]
        for k, v in filters.items():
            params += [("filter_keys", k), ("filter_predicates", "="), ("filter_values", v)]
        r = httpx.get(f"{self.dashboard}/api/v0/{kind}", params=params, headers=self._auth, timeout=30)
        r.raise_for_status()
        return r.json()["data"]["result"]["result"]

    def serve_replicas(self, app: str) -> dict[str, list[dict]]:
        """Each deployment's replicas of Serve application `app` (Serve's REST API: state, node_id, replica_id)."""
        r = httpx.get(f"{self.dashboard}/api/serve/applications/", headers=self._auth, timeout=30)
        r.raise_for_status()
        deployments = r.json()["applications"].get(app, {}).get("deployments", {})
        return {name: d["replicas"] for name, d in deployments.items()}

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def wait_for_nodes(self, n: int, timeout_s: float = 90) -> list[dict]:
        """Block until `n` nodes are alive; their state (node_id, is_head_node, ...)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for i, node in enumerate(self.nodes):
                if node.proc.poll() is not None:
                    raise RuntimeError(f"ray start of node {i} exited:\n{self.log(i)}")
            try:
                alive = self.state("nodes", state="ALIVE")
                if len(alive) >= n:
                    return alive
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} Ray nodes not alive in {timeout_s} s:\n{self.log(-1)}")
            time.sleep(1)

    def log(self, i: int) -> str:
        return (self.root / f"n{i % max(1, len(self.nodes))}.log").read_text()[-3000:]

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def __enter__(self) -> "RayCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
