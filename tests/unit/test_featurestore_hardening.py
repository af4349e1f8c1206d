"""Hostile input to the feature-store API: every wrong JSON type in every field is a 4xx naming the field (never a
5xx), created groups cannot write outside the data folder, and `ferry features serve` has a token and a streamed
payload limit."""

from __future__ import annotations

import os

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from featurestore.api import create_app
from featurestore.demo import applicant_feature_group
from featurestore.settings import FeatureStoreSettings
from featurestore.store import FeatureStore
from ferry.cli import app as cli

WRONG = [None, 0, 1.5, True, "x", [], ["x"], [["a"]], [{"a": 1}], {}, {"a": [1]}, [None]]
REC = [{"FeatureName": "applicant_id", "ValueAsString": "1"}, {"FeatureName": "event_time", "ValueAsString": "1"}]
IDENT = {"FeatureGroupName": "applicants", "RecordIdentifiersValueAsString": ["1"]}
BODIES = {  # (method, url, a valid body) - each top-level and nested field gets every wrong type
    "put": ("PUT", "/FeatureGroup/applicants", {"Record": REC, "TargetStores": ["OnlineStore"],
                                                 "TtlDuration": {"Unit": "Days", "Value": 1}}),
    "update": ("POST", "/FeatureGroup/applicants/Record", {"RecordIdentifierValueAsString": "1", "Features": [
        {"FeatureName": "age", "ValueAsString": "3"}], "TargetStores": ["OnlineStore"]}),
    "batch": ("POST", "/BatchGetRecord", {"Identifiers": [{**IDENT, "FeatureNames": ["age"]}],
                                          "ExpirationTimeResponse": "Enabled"}),
    "feast": ("POST", "/get-online-features", {"features": ["applicants:age"], "entities": {"applicant_id": [1]}}),
    "create": ("POST", "/feature-groups", {"name": "g2", "record_identifier": "id", "event_time": "et", "features": [
        {"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"}]}),
}


def mutations(body):
    """The body with one field (at any depth) replaced by each wrong value."""
    def walk(node, path):
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            yield path + [k]
            yield from walk(v, path + [k])

    import copy

    for path in walk(body, []):
        for wrong in WRONG:
            b = copy.deepcopy(body)
            node = b
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = wrong
            yield ".".join(map(str, path)), wrong, b


@pytest.fixture
def store(tmp_path):
    s = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path / "fs")), [applicant_feature_group()])
    s.put_record("applicants", {"applicant_id": 1, "event_time": 1.0, "age": 3})
    yield s
    s.close()


@pytest.fixture
def http(store):
    with TestClient(create_app(store)) as c:
        yield c


@pytest.mark.parametrize("route", sorted(BODIES))
def test_every_wrong_type_in_every_field_is_a_4xx(http, store, route):
    method, url, valid = BODIES[route]
    assert http.request(method, url, json=valid).status_code in (200, 201)
    store.delete_group("g2") if route == "create" else None
    seen = 0
    for field, wrong, body in mutations(valid):
        r = http.request(method, url, json=body)
        assert r.status_code < 500, (field, wrong, r.text)
        if r.status_code >= 400:
            assert r.json()["__type"] in ("ValidationError", "ResourceNotFound", "ConflictException"), r.text
        if route == "create" and r.status_code == 201:
            store.delete_group(r.json()["name"])
        seen += 1
    assert seen >= 3 * len(WRONG)


@pytest.mark.parametrize("names,field", [([["age"]], "FeatureNames"), ([1], "FeatureNames"), ("age", "FeatureNames"),
                                         ([{"a": 1}], "FeatureNames")])
def test_batch_feature_names_of_the_wrong_type_are_400(http, names, field):
    r = http.post("/BatchGetRecord", json={"Identifiers": [{**IDENT, "FeatureNames": names}]})
    assert r.status_code == 400 and r.json()["__type"] == "ValidationError"
    assert r.json()["message"].startswith(f"Identifiers.0.{field}: must be a list of feature names"), r.text


def test_record_feature_name_of_the_wrong_type_is_400(http):
    r = http.put("/FeatureGroup/applicants", json={"Record": [{"FeatureName": ["age"], "ValueAsString": "1"}]})
    assert r.status_code == 400 and r.json() == {"__type": "ValidationError",
                                                 "message": "Record.0.FeatureName: expected a string, got list"}
    r = http.post("/FeatureGroup/applicants/Record", json={"RecordIdentifierValueAsString": "1", "Features": [
        {"FeatureName": {"a": 1}, "ValueAsString": "1"}]})
    assert r.status_code == 400 and r.json()["message"] == "Features.0.FeatureName: expected a string, got dict"


def group(path):
    return {"name": "outside", "record_identifier": "id", "event_time": "et", "offline_store": {"path": path},
            "features": [{"name": "id", "type": "Integral"}, {"name": "et", "type": "Fractional"}]}


def test_created_groups_keep_their_offline_log_inside_the_data_folder(http, store, tmp_path):
    root = (tmp_path / "fs").resolve()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "link")
    for path in [str(tmp_path / "elsewhere"), "../elsewhere", "link/x", "/etc"]:
        r = http.post("/feature-groups", json=group(path))
        assert r.status_code == 400, path
        assert r.json()["message"].startswith(f"offline_store.path: must be inside the feature store's data folder "
                                              f"{root}"), r.text
    assert "outside" not in [g.name for g in store.groups()]
    r = http.post("/feature-groups", json=group("logs/outside"))
    assert r.status_code == 201 and r.json()["offline_store"]["path"] == str(root / "logs" / "outside")
    assert http.put("/FeatureGroup/outside", json={"Record": [{"FeatureName": "id", "ValueAsString": "1"}, {
        "FeatureName": "et", "ValueAsString": "1"}]}).status_code == 200
    assert list((root / "logs" / "outside").rglob("*.parquet")) and not list((tmp_path / "elsewhere").iterdir())


def test_token_and_streamed_payload_limit(store):
    with TestClient(create_app(store, max_body_bytes=1000, token="s3cret")) as c:
        assert c.get("/ping").status_code == 200  # probes need no token
        r = c.get("/FeatureGroup/applicants", params={"RecordIdentifierValueAsString": "1"})
        assert r.status_code == 401 and r.json()["__type"] == "UnauthorizedOperation"
        assert c.get("/feature-groups", headers={"Authorization": "Bearer nope"}).status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert c.get("/FeatureGroup/applicants", params={"RecordIdentifierValueAsString": "1"},
                     headers=auth).json()["Record"]
        r = c.put("/FeatureGroup/applicants", content=b"x" * 2000, headers=auth)
        assert r.status_code == 413 and "over the 1000-byte limit" in r.json()["message"]
        # no content-length (chunked): counted as it arrives (tests/integration/test_featurestore_serve.py sends
        # 64 MiB to a real server and checks it is not read whole)
        r = c.put("/FeatureGroup/applicants", content=(b"y" * 300 for _ in range(10)), headers=auth)
        assert r.status_code == 413 and r.json()["message"] == "the body is over the 1000-byte limit"
        ok = c.put("/FeatureGroup/applicants", json={"Record": REC}, headers=auth)
        assert ok.status_code == 200


def test_serve_refuses_to_bind_beyond_loopback_without_a_token(tmp_path):
    cfg = tmp_path / "ferry.yaml"
    cfg.write_text(yaml.safe_dump({"feature_groups": [applicant_feature_group().model_dump(mode="json")]}))
    r = CliRunner().invoke(cli, ["features", "serve", "-f", str(cfg), "--host", "0.0.0.0"])
    said = " ".join(r.output.replace("│", " ").split())
    assert r.exit_code == 2 and "refusing to serve on 0.0.0.0 without server.auth_token" in said, said
