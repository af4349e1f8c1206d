"""ferry-haproxy confines the listeners Ray Serve's HAProxy template binds to every interface, and tells Ray Serve
not to watch requests to Ferry's apps for disconnects."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from ray.serve._private import haproxy_templates

from serving.haproxy import FERRY_BACKEND_RULES, NO_DISCONNECT_WATCH, REQUEST_ID, confine


def test_wildcard_binds_and_admin_socket_are_confined():
    config = ("global\n    stats socket /tmp/x/admin.sock mode 666 level admin expose-fd listeners\n"
              "frontend prometheus\n    bind :9101\n    mode http\n"
              "frontend http_frontend\n    bind 127.0.0.1:8080\n"
              "listen stats\n  bind *:8404\n  stats enable\n")
    out = confine(config, "127.0.0.1")
    assert "    bind 127.0.0.1:9101\n" in out and "  bind 127.0.0.1:8404\n" in out
    assert "bind 127.0.0.1:8080" in out  # request listeners untouched
    assert "mode 600 level admin" in out and "666" not in out
    assert "bind [::1]:9101" in confine(config, "::1")


def test_ferrys_backends_and_only_theirs_skip_rays_disconnect_watch():
    config = ("frontend http_frontend\n    bind 127.0.0.1:8080\n    use_backend http-ferry if is_http-ferry\n"
              "backend http-ferry\n    log global\n    server a 127.0.0.1:30000\n"
              "backend http-ferry-alone\n    server b 127.0.0.1:30001\n"
              "backend http-bare\n    server c 127.0.0.1:30002\n"
              "backend http-ferryman\n    server d 127.0.0.1:30003\n")
    out = confine(config, "127.0.0.1")
    assert f"backend http-ferry\n{NO_DISCONNECT_WATCH}{REQUEST_ID}    log global\n" in out
    assert f"backend http-ferry-alone\n{FERRY_BACKEND_RULES}    server b" in out
    assert out.count(FERRY_BACKEND_RULES) == 2  # not another app's backend (http-bare, http-ferryman)
    assert confine(out, "127.0.0.1") == out  # a config rewritten before is left as it is


def test_rays_template_still_has_the_lines_the_wrapper_rewrites():
    """If Ray changes its template or the header's meaning, this fails rather than leaving a port open on every
    interface or a header that does nothing."""
    from ray.serve._private.constants import SERVE_HTTP_REQUEST_DISCONNECT_DISABLED_HEADER, SERVE_HTTP_REQUEST_ID_HEADER
    from ray.serve._private.http_util import parse_disconnect_disabled_header

    text = haproxy_templates.HAPROXY_CONFIG_TEMPLATE
    assert "bind :{{ config.metrics_port }}" in text
    assert "bind *:{{ config.stats_port }}" in text
    assert "mode 666" in text
    assert "\nbackend {{ backend.name or 'unknown' }}\n" in text
    header, value = NO_DISCONNECT_WATCH.split()[-2:]
    assert header == SERVE_HTTP_REQUEST_DISCONNECT_DISABLED_HEADER
    assert parse_disconnect_disabled_header({header.encode(): value.encode()})
    assert REQUEST_ID.split()[2] == SERVE_HTTP_REQUEST_ID_HEADER


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals are Linux's")
def test_haproxy_dies_with_the_process_that_started_it(tmp_path):
    """Ray kills the HAProxy it knows of; one it started during shutdown (a reload) must not outlive it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "haproxy.cfg"
    config.write_text("defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n"
                      f"    timeout server 1s\nfrontend f\n    bind 127.0.0.1:{port}\n"
                      "    http-request return status 200\n")
    parent = subprocess.Popen(  # stands in for Ray's proxy actor: starts the wrapper, then is killed
        [sys.executable, "-c", "import subprocess, sys, time\n"
         f"p = subprocess.Popen([sys.executable, '-m', 'serving.haproxy', '-db', '-f', {str(config)!r}])\n"
         "print(p.pid, flush=True)\ntime.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    haproxy = 0
    try:
        haproxy = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # HAProxy serves: the wrapper has handed over
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.05)
        else:
            pytest.fail("HAProxy did not start")
        assert os.readlink(f"/proc/{haproxy}/exe").endswith("haproxy")
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(haproxy) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(haproxy), "HAProxy outlived the process that started it"
    finally:
        parent.kill()
        if haproxy and _alive(haproxy):
            os.kill(haproxy, signal.SIGKILL)
