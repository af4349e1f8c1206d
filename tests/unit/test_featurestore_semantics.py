"""SageMaker Feature Store record semantics on the embedded SQLite store.

tests/integration/test_featurestore_redis_semantics.py runs these same tests on a real Redis server by
overriding the `online` fixture.
"""

from __future__ import annotations

import time

import pytest

from featurestore.online.sqlite import SQLiteOnlineStore
from featurestore.records import ConflictError, NotFoundError, RecordError
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore

GROUP = {
    "name": "customers",
    "record_identifier": "customer_id",
    "event_time": "ts",
    "features": [
        {"FeatureName": "customer_id", "FeatureType": "String"},
        {"FeatureName": "ts", "FeatureType": "String"},
        {"FeatureName": "age", "FeatureType": "Integral"},
        {"FeatureName": "score", "FeatureType": "Fractional"},
        {"FeatureName": "city", "FeatureType": "String"},
        {"FeatureName": "tags", "FeatureType": "String", "CollectionType": "Set"},
        {"FeatureName": "emb", "FeatureType": "Fractional", "CollectionType": "Vector", "Dimension": 3},
    ],
}


@pytest.fixture
def online(tmp_path):
    s = SQLiteOnlineStore(tmp_path / "online.db")
    yield s
    s.close()


@pytest.fixture
def fs(tmp_path, online):
    spec = FeatureGroupSpec.model_validate({**GROUP, "name": f"customers_{time.time_ns()}"})
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path / "fs")), [spec], online=online)
    store.g = spec.name
    return store


def rec(cid="c1", ts="2026-01-01T00:00:10Z", **kw):
    return {"customer_id": cid, "ts": ts, **kw}


def values(resp):
    return {fv["FeatureName"]: fv.get("ValueAsString", fv.get("ValueAsStringList")) for fv in resp["Record"]}


def offline_rows(fs):
    spec = fs.group(fs.g)
    return fs.offline(spec).read(spec).to_pandas().sort_values(["api_invocation_time", "ts"])


def test_put_newer_overwrites_and_older_or_equal_is_offline_only(fs):
    assert fs.put_record(fs.g, rec(age=30, score=0.5))
    assert fs.put_record(fs.g, rec(ts="2026-01-01T00:00:20Z", age=31))
    assert not fs.put_record(fs.g, rec(ts="2026-01-01T00:00:15Z", age=99))  # older: offline only
    assert not fs.put_record(fs.g, rec(ts="2026-01-01T00:00:20Z", age=98))  # equal is not newer
    got = values(fs.get_record(fs.g, "c1"))
    assert got["age"] == "31" and got["ts"] == "2026-01-01T00:00:20Z"
    assert "score" not in got  # PutRecord is a full overwrite
    assert sorted(offline_rows(fs)["age"].tolist()) == [30, 31, 98, 99]


def test_sagemaker_record_shape_and_feature_names_filter(fs):
    fs.put_record(fs.g, [{"FeatureName": "customer_id", "ValueAsString": "c2"},
                         {"FeatureName": "ts", "ValueAsString": "2026-01-01T00:00:00.123Z"},
                         {"FeatureName": "score", "ValueAsString": "0.25"},
                         {"FeatureName": "tags", "ValueAsStringList": ["a", "b"]},
                         {"FeatureName": "emb", "ValueAsStringList": ["1", "2.5", "-3"]}])
    resp = fs.get_record(fs.g, "c2", ["emb", "score"])
    assert resp["Record"] == [{"FeatureName": "emb", "ValueAsStringList": ["1.0", "2.5", "-3.0"]},
                              {"FeatureName": "score", "ValueAsString": "0.25"}]
    assert "ExpiresAt" not in resp
    with pytest.raises(RecordError, match="FeatureNames"):
        fs.get_record(fs.g, "c2", ["nope"])


def test_unknown_id_is_empty_not_error(fs):
    assert fs.get_record(fs.g, "missing") == {}


@pytest.mark.parametrize("bad,field", [
    (rec(age="x"), "age"), (rec(age=2**63), "age"), (rec(age=True), "age"), (rec(score="abc"), "score"),
    (rec(city=5), "city"), (rec(tags=["a", "a"]), "tags"), (rec(emb=[1.0, 2.0]), "emb"),
    (rec(ts="yesterday"), "ts"), ({"ts": "2026-01-01T00:00:00Z"}, "customer_id"), ({"customer_id": "c"}, "ts"),
    (rec(nope=1), "nope"),
])
def test_bad_records_name_the_field(fs, bad, field):
    with pytest.raises(RecordError) as e:
        fs.put_record(fs.g, bad)
    assert e.value.field == field


def test_update_merges_listed_features_and_rejects_older(fs):
    fs.put_record(fs.g, rec(age=30, score=0.5, city="Oslo"))
    fs.update_record(fs.g, "c1", {"score": 0.75})  # no event time: keeps the stored one
    got = values(fs.get_record(fs.g, "c1"))
    assert got == {"customer_id": "c1", "ts": "2026-01-01T00:00:10Z", "age": "30", "score": "0.75", "city": "Oslo"}
    fs.update_record(fs.g, "c1", [{"FeatureName": "ts", "ValueAsString": "2026-01-01T00:00:10Z"},
                                  {"FeatureName": "city", "ValueAsString": "Bergen"}])  # equal: applied
    assert values(fs.get_record(fs.g, "c1"))["city"] == "Bergen"
    with pytest.raises(ConflictError):
        fs.update_record(fs.g, "c1", {"ts": "2026-01-01T00:00:05Z", "age": 1})
    assert values(fs.get_record(fs.g, "c1"))["age"] == "30"
    fs.update_record(fs.g, "c1", {"ts": "2026-01-01T00:01:00Z", "age": 40})
    got = values(fs.get_record(fs.g, "c1"))
    assert got["age"] == "40" and got["ts"] == "2026-01-01T00:01:00Z" and got["city"] == "Bergen"


def test_update_of_missing_record_needs_event_time(fs):
    with pytest.raises(RecordError, match="ts"):
        fs.update_record(fs.g, "new", {"age": 3})
    fs.update_record(fs.g, "new", {"ts": "2026-01-01T00:00:00Z", "age": 3})
    assert values(fs.get_record(fs.g, "new"))["age"] == "3"


def test_soft_delete_hides_record_keeps_tombstone_and_writes_marker(fs):
    fs.put_record(fs.g, rec(age=30))
    assert not fs.delete_record(fs.g, "c1", "2026-01-01T00:00:05Z")  # older: online kept, marker still written
    assert values(fs.get_record(fs.g, "c1"))["age"] == "30"
    assert fs.delete_record(fs.g, "c1", "2026-01-01T00:00:20Z")
    assert fs.get_record(fs.g, "c1") == {}
    assert not fs.put_record(fs.g, rec(ts="2026-01-01T00:00:15Z", age=1))  # tombstone blocks older puts
    assert fs.get_record(fs.g, "c1") == {}
    assert fs.put_record(fs.g, rec(ts="2026-01-01T00:00:25Z", age=2))
    assert values(fs.get_record(fs.g, "c1"))["age"] == "2"
    off = offline_rows(fs)
    markers = off[off["is_deleted"]]
    assert len(markers) == 2 and markers["age"].isna().all()
    assert sorted(markers["ts"]) == ["2026-01-01T00:00:05Z", "2026-01-01T00:00:20Z"]


def test_hard_delete_rules(fs):
    fs.put_record(fs.g, rec(age=30))
    with pytest.raises(RecordError, match="EventTime"):
        fs.delete_record(fs.g, "c1", "2026-01-01T00:00:10Z", deletion_mode="HardDelete")
    assert values(fs.get_record(fs.g, "c1"))["age"] == "30"
    assert not offline_rows(fs)["is_deleted"].any()  # rejected hard delete writes no marker
    assert fs.delete_record(fs.g, "c1", "2026-01-01T00:00:11Z", deletion_mode="HardDelete")
    assert fs.get_record(fs.g, "c1") == {}
    assert fs.put_record(fs.g, rec(ts="2026-01-01T00:00:01Z", age=5))  # row gone: any event time applies
    with pytest.raises(RecordError, match="DeletionMode"):
        fs.delete_record(fs.g, "c1", "2026-01-01T00:00:30Z", deletion_mode="Purge")


def test_ttl_record_level_overrides_group_and_expired_is_never_returned(fs):
    now = time.time()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + "Z"
    fs.group(fs.g).online_store.ttl = None
    fs.put_record(fs.g, rec("live", iso(now), age=1), ttl={"Unit": "Hours", "Value": 1})
    fs.put_record(fs.g, rec("old", iso(now - 7200), age=2), ttl={"Unit": "Hours", "Value": 1})
    fs.put_record(fs.g, rec("forever", iso(now - 7200), age=3))
    got = fs.get_record(fs.g, "live", expiration=True)
    assert got["ExpiresAt"] == iso(int(now) + 3600).replace("Z", ".000Z")
    assert fs.get_record(fs.g, "old") == {}
    assert values(fs.get_record(fs.g, "forever"))["age"] == "3"
    # an expired record does not block older writes: expiry is a delete
    assert fs.put_record(fs.g, rec("old", iso(now - 7300), age=4), ttl={"Unit": "Days", "Value": 1})
    assert values(fs.get_record(fs.g, "old"))["age"] == "4"
    batch = fs.batch_get_record([{"FeatureGroupName": fs.g, "RecordIdentifiersValueAsString": ["live", "forever"]}],
                                expiration=True)
    assert ["ExpiresAt" in r for r in batch["Records"]] == [True, False]


def test_group_ttl(fs):
    from featurestore.spec import TtlDuration

    fs.group(fs.g).online_store.ttl = TtlDuration(Unit="Seconds", Value=1)
    fs.put_record(fs.g, rec("a", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5)), age=1))
    assert fs.get_record(fs.g, "a") == {}


def test_batch_get_across_groups_errors_and_order(fs):
    for i in range(5):
        fs.put_record(fs.g, rec(f"c{i}", age=i))
    resp = fs.batch_get_record([
        {"FeatureGroupName": fs.g, "RecordIdentifiersValueAsString": ["c3", "zz", "c1"], "FeatureNames": ["age"]},
        {"FeatureGroupName": "ghost", "RecordIdentifiersValueAsString": ["x"]},
        {"FeatureGroupName": fs.g, "RecordIdentifiersValueAsString": ["c2"], "FeatureNames": ["bogus"]},
    ])
    assert [(r["RecordIdentifierValueAsString"], r["Record"]) for r in resp["Records"]] == [
        ("c3", [{"FeatureName": "age", "ValueAsString": "3"}]), ("c1", [{"FeatureName": "age", "ValueAsString": "1"}])]
    assert [(e["FeatureGroupName"], e["ErrorCode"]) for e in resp["Errors"]] == [
        ("ghost", "ResourceNotFound"), (fs.g, "ValidationError")]
    assert resp["UnprocessedIdentifiers"] == []


def test_batch_get_beyond_cap_returns_unprocessed_not_truncated(fs, monkeypatch):
    import featurestore.store as store_mod

    monkeypatch.setattr(store_mod, "MAX_BATCH_IDENTIFIERS", 3)
    for i in range(5):
        fs.put_record(fs.g, rec(f"c{i}", age=i))
    resp = fs.batch_get_record([{"FeatureGroupName": fs.g, "RecordIdentifiersValueAsString": [f"c{i}" for i in range(5)]}])
    assert [r["RecordIdentifierValueAsString"] for r in resp["Records"]] == ["c0", "c1", "c2"]
    assert resp["UnprocessedIdentifiers"] == [{"FeatureGroupName": fs.g, "RecordIdentifiersValueAsString": ["c3", "c4"]}]


def test_target_stores(fs):
    fs.put_record(fs.g, rec(age=1), target_stores=["OfflineStore"])
    assert fs.get_record(fs.g, "c1") == {}
    fs.put_record(fs.g, rec("c2", age=2), target_stores=["OnlineStore"])
    assert offline_rows(fs)["customer_id"].tolist() == ["c1"]
    with pytest.raises(RecordError, match="TargetStores"):
        fs.put_record(fs.g, rec(age=1), target_stores=["Elsewhere"])


def test_unknown_group(fs):
    with pytest.raises(NotFoundError):
        fs.put_record("ghost", rec())


def test_create_group_persists_in_registry(fs, tmp_path, online):
    spec = fs.create_group({**GROUP, "name": "created"})
    again = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path / "fs")), online=online)
    assert again.group("created") == spec
    with pytest.raises(RecordError, match="already exists"):
        again.create_group({**GROUP, "name": "created"})
    again.delete_group("created")
    with pytest.raises(NotFoundError):
        FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path / "fs")), online=online).group("created")
