"""Checks `ferry validate` and `ferry up` run before Ray starts: the models load, pipeline steps import, the
ports are free.

Each check returns the problems it found as sentences a user can act on; `check` joins them into one
PreflightError. A port is in use when a connection to it succeeds or a bind to it fails: Ray Serve's proxy
binds with SO_REUSEPORT, so a second Ferry could bind beside the first and a bind test alone would miss it.
The process that holds a port is found through /proc/net/tcp{,6} and /proc/<pid>/fd (Linux).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from serving.spec import EndpointSpec, ModelSpec, ServerSpec

log = logging.getLogger(__name__)
LISTEN = "0A"  # TCP state of a listening socket in /proc/net/tcp


class PreflightError(Exception):
    """Ferry cannot start; the message says why and what to change."""


def check_models(models: list[ModelSpec]) -> list[str]:
    """Each model's file exists and onnxruntime creates a session from it (with its input/output names)."""
    from core.onnx import OnnxModel

    problems = []
    for m in models:
        local = "://" not in m.path or m.path.startswith("file://")
        path = m.path.removeprefix("file://")
        if local and not Path(path).is_file():
            problems.append(f"model {m.name!r}: file {path} does not exist.")
            continue
        try:
            OnnxModel(m.path, m.input_names, m.output_names)
        except Exception as err:  # noqa: BLE001 - onnxruntime, fsspec and protobuf raise their own types
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            problems.append(f"model {m.name!r}: {m.path} cannot be loaded by onnxruntime ({first}).")
    return problems


@dataclass(frozen=True)
class PortHolder:
    pid: int | None
    command: str | None


def check_ports(server: ServerSpec) -> list[str]:
    """server.http_port and server.grpc_port are free on server.host."""
    problems = []
    for field, port in (("http_port", server.http_port), ("grpc_port", server.grpc_port)):
        if not port_in_use(server.host, port):
            continue
        holder = port_holder(port)
        who = ("another process" if holder is None or holder.pid is None
               else f"process {holder.pid} ({holder.command})" if holder.command else f"process {holder.pid}")
        problems.append(f"port {port} (server.{field}) on {server.host} is already in use by {who}; stop it, or "
                        f"choose another port with server.{field} in the deploy file or "
                        f"FERRY_SERVER__{field.upper()}=<port>.")
    if server.http_port == server.grpc_port:
        problems.append(f"server.http_port and server.grpc_port are both {server.http_port}; "
                        "give them different ports.")
    return problems


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts connections on host:port, or host:port cannot be bound."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    try:
        with socket.create_connection((target, port), timeout=0.5):
            return True
    except OSError:
        pass
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is not "in use"
        try:
            s.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def port_holder(port: int, proc: Path = Path("/proc")) -> PortHolder | None:
    """The process with a listening TCP socket on `port` (None when no listener is found)."""
    inodes = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == LISTEN and int(f[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f[9])
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:  # gone, or not ours to read
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    return PortHolder(int(pid_dir.name), _command(pid_dir))
            except OSError:
                continue
    return PortHolder(None, None)


def _command(pid_dir: Path) -> str | None:
    try:
        argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    return text[:120] or None


def check_steps(endpoints: list[EndpointSpec]) -> list[str]:
    """Each pipeline's Python steps import (from the deploy file's folder) and are callable."""
    from serving.steps import load_callable

    problems = []
    for ep in endpoints:
        for v in ep.variants:
            for step in v.pipeline or ():
                if step.python is None:
                    continue
                try:
                    load_callable(step.python, step.path, step.init_args)
                except ValueError as err:
                    problems.append(f"endpoint {ep.name!r}, variant {v.name!r}, step {step.name!r}: {err}.")
    return problems


def check(models: list[ModelSpec], server: ServerSpec | None = None, endpoints: list[EndpointSpec] = ()) -> None:
    """Raise PreflightError naming every problem (models and pipeline steps always; ports when `server` is
    given)."""
    problems = check_models(models) + check_steps(endpoints)
    if server is not None:
        problems += check_ports(server)
    if problems:
        raise PreflightError(" ".join(problems))
