"""`ferry dashboards push` against a local HTTP server implementing the Grafana endpoints it uses (Grafana's
server cannot be installed here): the folder is made first, every dashboard and rule group arrives with the
token, and what arrives is accepted by grafana-foundation-sdk's schema types."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.alerting import RuleGroup
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import alerting, build

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "glsa_test_token"


class FakeGrafana(BaseHTTPRequestHandler):
    """GET/POST /api/folders, POST /api/dashboards/db, PUT /api/v1/provisioning/folder/{uid}/rule-groups/{g}."""

    state: dict

    def log_message(self, *args):
        pass

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, {"message": "Unauthorized"})
            return False
        return True

    def _body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_GET(self):
        if not self._authorized():
            return
        parts = self.path.strip("/").split("/")
        if parts[:2] == ["api", "folders"] and len(parts) == 3:
            folder = self.state["folders"].get(parts[2])
            return self._answer(200, folder) if folder else self._answer(404, {"message": "folder not found"})
        self._answer(404, {"message": "not found"})

    def do_POST(self):
        if not self._authorized():
            return
        body = self._body()
        self.state["calls"].append(("POST", self.path))
        if self.path == "/api/folders":
            self.state["folders"][body["uid"]] = {"uid": body["uid"], "title": body["title"]}
            return self._answer(200, self.state["folders"][body["uid"]])
        if self.path == "/api/dashboards/db":
            if body.get("folderUid") not in self.state["folders"]:
                return self._answer(400, {"message": "folder not found"})
            self.state["dashboards"][body["dashboard"]["uid"]] = body
            return self._answer(200, {"status": "success", "uid": body["dashboard"]["uid"]})
        self._answer(404, {"message": "not found"})

    def do_PUT(self):
        if not self._authorized():
            return
        parts = self.path.strip("/").split("/")
        body = self._body()
        self.state["calls"].append(("PUT", self.path))
        if parts[:4] == ["api", "v1", "provisioning", "folder"] and parts[5] == "rule-groups":
            if parts[4] not in self.state["folders"]:
                return self._answer(400, {"message": "folder not found"})
            self.state["rule_groups"][parts[6]] = (body, self.headers.get("X-Disable-Provenance"))
            return self._answer(200, body)
        self._answer(404, {"message": "not found"})


@pytest.fixture
def grafana():
    state = {"folders": {}, "dashboards": {}, "rule_groups": {}, "calls": []}
    handler = type("Handler", (FakeGrafana,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()


def _push(url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferry.cli", "dashboards", "push", "--url", url, *extra],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_push_uploads_every_dashboard_and_rule_group(grafana):
    url, state = grafana
    out = _push(url, "--token", TOKEN, "--datasource-uid", "prom-main")
    assert out.returncode == 0, out.stderr
    assert state["calls"][0] == ("POST", "/api/folders"), "the folder is made before what goes in it"
    assert set(state["dashboards"]) == set(build.BOARDS)
    for uid, body in state["dashboards"].items():
        assert body["overwrite"] is True and body["folderUid"] == alerting.FOLDER_UID
        assert body["dashboard"] == json.loads((ROOT / "dashboards" / "grafana" / f"{uid}.json").read_text())
        parsed = Dashboard.from_json(body["dashboard"])
        assert parsed.uid == uid and len(parsed.panels) == len(body["dashboard"]["panels"])
    assert set(state["rule_groups"]) == {g["title"] for g in alerting.rule_groups()}
    for name, (group, provenance) in state["rule_groups"].items():
        assert provenance == "true"
        assert json.loads(json.dumps(RuleGroup.from_json(group), cls=JSONEncoder)) == group
        assert {q["datasourceUid"] for r in group["rules"] for q in r["data"]} == {"prom-main", "__expr__"}

    again = _push(url, "--token", TOKEN)  # the folder exists now: not made twice, everything overwritten
    assert again.returncode == 0, again.stderr
    assert state["calls"].count(("POST", "/api/folders")) == 1


def test_a_wrong_token_is_an_error_that_says_so(grafana):
    url, state = grafana
    out = _push(url, "--token", "wrong")
    assert out.returncode == 1 and "refused" in out.stderr and "Unauthorized" in out.stderr
    assert state["dashboards"] == {}


def test_an_unreachable_grafana_is_an_error_that_says_so():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = _push(f"http://127.0.0.1:{port}", "--token", TOKEN)
    assert out.returncode == 1 and "cannot reach Grafana" in out.stderr, out.stderr
