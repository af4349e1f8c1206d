"""Online backends as plug-ins: typed configs chosen by `type`, one map, one store-neutral "unavailable" error."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from featurestore.api import create_app
from featurestore.demo import applicant_feature_group
from featurestore.online import BACKENDS, StoreUnavailable
from featurestore.online.redis import RedisConfig, RedisOnlineStore
from featurestore.online.sqlite import SQLiteConfig, SQLiteOnlineStore
from featurestore.settings import FeatureStoreSettings
from featurestore.store import FeatureStore


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


def test_settings_pick_the_backend_by_type(tmp_path):
    s = FeatureStoreSettings.model_validate({"online": {"type": "redis", "url": "redis://10.0.0.9:6380/2",
                                                        "timeout_s": 0.5}})
    assert s.online == RedisConfig(url="redis://10.0.0.9:6380/2", timeout_s=0.5)
    assert FeatureStoreSettings(online="sqlite").online == SQLiteConfig()
    assert FeatureStoreSettings().online.type == "sqlite"
    dumped = FeatureStoreSettings(online="redis").model_dump()
    assert FeatureStoreSettings.model_validate(dumped).online == RedisConfig()
    with pytest.raises(ValidationError, match="unknown online store 'dynamo'"):
        FeatureStoreSettings(online="dynamo")
    with pytest.raises(ValidationError, match=r"online\.redis\.uri"):
        FeatureStoreSettings.model_validate({"online": {"type": "redis", "uri": "redis://x"}})
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path), online={"type": "sqlite", "path": "x.db"}))
    assert isinstance(store.online, SQLiteOnlineStore) and store.online.path == tmp_path / "x.db"
    store.close()


def test_one_map_from_type_to_backend():
    assert {t: b.config_class.model_fields["type"].default for t, b in BACKENDS.items()} == {
        "sqlite": "sqlite", "redis": "redis"}
    assert BACKENDS["redis"] is RedisOnlineStore


def test_an_unreachable_backend_raises_the_neutral_error_and_the_api_answers_503(tmp_path):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    online = RedisOnlineStore(url, timeout=0.5)
    with pytest.raises(StoreUnavailable, match="redis online store unavailable"):
        online.ping()
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path), online={"type": "redis", "url": url}),
                         [applicant_feature_group()])
    with TestClient(create_app(store)) as http:
        r = http.get("/FeatureGroup/applicants", params={"RecordIdentifierValueAsString": "1"})
        assert r.status_code == 503 and r.json()["__type"] == "ServiceUnavailable"
        assert r.json()["message"].startswith("redis online store unavailable")
        r = http.put("/FeatureGroup/applicants", json={"Record": [
            {"FeatureName": "applicant_id", "ValueAsString": "1"},
            {"FeatureName": "event_time", "ValueAsString": "1"}]})
        assert r.status_code == 503 and r.json()["__type"] == "ServiceUnavailable"
        ident = {"FeatureGroupName": "applicants", "RecordIdentifiersValueAsString": ["1", "2"]}
        r = http.post("/BatchGetRecord", json={"Identifiers": [ident]})
        assert r.status_code == 200 and r.json() == {"Records": [], "Errors": [], "UnprocessedIdentifiers": [ident]}
        r = http.get("/ping")
        assert r.status_code == 503 and r.json()["__type"] == "ServiceUnavailable"
    store.close()
