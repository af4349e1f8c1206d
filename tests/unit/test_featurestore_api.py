"""The REST API and its Python client against the real FastAPI app (in-process ASGI transport)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from featurestore.api import create_app
from featurestore.client import FeatureStoreClient, FeatureStoreError, values
from featurestore.demo import applicant_feature_group
from featurestore.settings import FeatureStoreSettings
from featurestore.store import FeatureStore


@pytest.fixture
def client(tmp_path):
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path)), [applicant_feature_group()])
    with TestClient(create_app(store)) as http:
        yield FeatureStoreClient(client=http)
    store.close()


def put(c, aid, et, **kw):
    c.put_record("applicants", {"applicant_id": aid, "event_time": et, **kw})


def test_put_get_roundtrip_and_event_time_rule(client):
    put(client, 7, 100.0, age=41, income=5200.5, housing="own")
    put(client, 7, 99.0, age=1)  # older: offline only
    got = client.get_record("applicants", 7, expiration=True)
    assert values(got["Record"]) == {"applicant_id": "7", "event_time": "100.0", "age": "41", "income": "5200.5",
                                     "housing": "own"}
    assert "ExpiresAt" not in got  # no TTL: no expiry
    assert client.get_record("applicants", 7, ["income"])["Record"] == [
        {"FeatureName": "income", "ValueAsString": "5200.5"}]
    assert client.get_record("applicants", 8) == {}


def test_update_conflict_and_delete(client):
    put(client, 1, 100.0, age=30, income=1.0)
    client.update_record("applicants", 1, {"income": 2.0})
    assert values(client.get_record("applicants", 1)["Record"])["income"] == "2.0"
    with pytest.raises(FeatureStoreError) as e:
        client.update_record("applicants", 1, {"event_time": 50.0, "income": 3.0})
    assert e.value.status == 409 and e.value.kind == "ConflictException"
    with pytest.raises(FeatureStoreError) as e:
        client.delete_record("applicants", 1, 100.0, hard=True)
    assert e.value.status == 400 and "EventTime" in e.value.message
    client.delete_record("applicants", 1, 101.0)
    assert client.get_record("applicants", 1) == {}


def test_batch_get_and_feast_route(client):
    for i in range(3):
        put(client, i, 10.0 + i, age=20 + i, income=float(i))
    resp = client.batch_get_record([
        {"FeatureGroupName": "applicants", "RecordIdentifiersValueAsString": ["0", "2", "9"], "FeatureNames": ["age"]},
        {"FeatureGroupName": "ghost", "RecordIdentifiersValueAsString": ["1"]}])
    assert [(r["RecordIdentifierValueAsString"], r["Record"][0]["ValueAsString"]) for r in resp["Records"]] == [
        ("0", "20"), ("2", "22")]
    assert resp["Errors"][0]["ErrorCode"] == "ResourceNotFound" and resp["UnprocessedIdentifiers"] == []
    feast = client.get_online_features(["applicants:age", "applicants:income"], {"applicant_id": [2, 9, 0]})
    assert feast["metadata"]["feature_names"] == ["applicant_id", "age", "income"]
    assert feast["results"][1]["values"] == [22, None, 20]
    assert feast["results"][2]["statuses"] == ["PRESENT", "NOT_FOUND", "PRESENT"]


@pytest.mark.parametrize("method,url,kw,field", [
    ("PUT", "/FeatureGroup/applicants", {"content": b"{not json"}, "body"),
    ("PUT", "/FeatureGroup/applicants", {"json": {"Record": "x"}}, "Record"),
    ("PUT", "/FeatureGroup/applicants", {"json": {"Record": [{"FeatureName": "applicant_id", "ValueAsString": "1"},
                                                             {"FeatureName": "event_time", "ValueAsString": "1"},
                                                             {"FeatureName": "age", "ValueAsString": "old"}]}}, "age"),
    ("PUT", "/FeatureGroup/applicants", {"json": {"Record": [{"FeatureName": "applicant_id", "ValueAsString": "1"}]}},
     "event_time"),
    ("GET", "/FeatureGroup/applicants", {}, "RecordIdentifierValueAsString"),
    ("GET", "/FeatureGroup/applicants?RecordIdentifierValueAsString=1&FeatureName=zzz", {}, "FeatureNames"),
    ("GET", "/FeatureGroup/applicants?RecordIdentifierValueAsString=1&ExpirationTimeResponse=Yes", {},
     "ExpirationTimeResponse"),
    ("DELETE", "/FeatureGroup/applicants?RecordIdentifierValueAsString=1", {}, "EventTime"),
    ("POST", "/BatchGetRecord", {"json": {"Identifiers": [{"RecordIdentifiersValueAsString": ["1"]}]}},
     "Identifiers.0.FeatureGroupName"),
    ("POST", "/get-online-features", {"json": {"features": ["age"], "entities": {"applicant_id": [1]}}},
     "features.0"),
    ("POST", "/feature-groups", {"json": {"name": "bad name!", "record_identifier": "a", "event_time": "b",
                                          "features": []}}, "name"),
])
def test_bad_requests_are_400_naming_the_field(client, method, url, kw, field):
    resp = client.http.request(method, url, **kw)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["__type"] == "ValidationError" and field in body["message"], body


def test_unknown_group_is_404(client):
    resp = client.http.get("/FeatureGroup/ghost", params={"RecordIdentifierValueAsString": "1"})
    assert resp.status_code == 404 and resp.json()["__type"] == "ResourceNotFound"


def test_create_describe_delete_group(client):
    spec = {"name": "merchants", "record_identifier": "merchant_id", "event_time": "ts",
            "features": [{"FeatureName": "merchant_id", "FeatureType": "String"},
                         {"FeatureName": "ts", "FeatureType": "String"},
                         {"FeatureName": "risk", "FeatureType": "Fractional"}],
            "online_store": {"ttl": {"Unit": "Days", "Value": 7}}}
    created = client.create_feature_group(spec)
    assert created["online_store"]["ttl"] == {"unit": "Days", "value": 7}
    with pytest.raises(FeatureStoreError) as e:
        client.create_feature_group(spec)
    assert e.value.status == 400
    client.put_record("merchants", {"merchant_id": "m1", "ts": "2099-01-01T00:00:00Z", "risk": 0.5})
    assert client.get_record("merchants", "m1", expiration=True)["ExpiresAt"] == "2099-01-08T00:00:00.000Z"
    assert client.describe_feature_group("merchants")["name"] == "merchants"
    client.delete_feature_group("merchants")
    with pytest.raises(FeatureStoreError) as e:
        client.describe_feature_group("merchants")
    assert e.value.status == 404
