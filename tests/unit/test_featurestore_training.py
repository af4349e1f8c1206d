"""Point-in-time join (DuckDB) against a brute-force reference written with plain Python loops."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from featurestore.offline import OfflineStore
from featurestore.records import Record
from featurestore.spec import FeatureGroupSpec
from featurestore.training import point_in_time_join

SPEC = FeatureGroupSpec.model_validate({
    "name": "users", "record_identifier": "user_id", "event_time": "et",
    "features": [{"FeatureName": "user_id", "FeatureType": "Integral"},
                 {"FeatureName": "et", "FeatureType": "Fractional"},
                 {"FeatureName": "x", "FeatureType": "Fractional"},
                 {"FeatureName": "n", "FeatureType": "Integral"},
                 {"FeatureName": "s", "FeatureType": "String"}]})
T0 = 1_767_225_600.0  # 2026-01-01


def make_log(tmp_path, seed=3, n_ids=40, n_rows=1500):
    rng = np.random.default_rng(seed)
    off = OfflineStore(tmp_path)
    rows = []  # (id, et, x, n, s, deleted, api_time)
    for batch in range(6):
        recs, dels = [], []
        for _ in range(n_rows // 6):
            uid = int(rng.integers(n_ids))
            et = T0 + float(rng.integers(0, 3 * 86400))  # 3 days of hour partitions, out of order
            deleted = rng.random() < 0.05
            vals = {"user_id": uid, "et": et}
            if not deleted:
                vals |= {"x": float(rng.normal()), "n": int(rng.integers(100)), "s": f"s{rng.integers(5)}"}
            recs.append(Record(str(uid), et, vals))
            dels.append(deleted)
            rows.append((uid, et, vals.get("x"), vals.get("n"), vals.get("s"), deleted, batch))
        off.append(SPEC, recs, deleted=dels, api_invocation_time=T0 + 10 * 86400 + batch)
    return off, rows


def brute_force(rows, entities, ttl=None):
    out = []
    for uid, ts in zip(entities["user_id"], entities["ts"]):
        best = None
        for r in rows:  # earliest batch wins among equal event times; rows in a batch are in write order
            if r[0] == uid and r[1] <= ts and (best is None or r[1] > best[1]):
                best = r
        if best is None or best[5] or (ttl is not None and best[1] < ts - ttl):
            out.append((None, None, None))
        else:
            out.append(best[2:5])
    return out


@pytest.mark.parametrize("ttl", [None, 6 * 3600.0])
def test_pit_join_matches_brute_force(tmp_path, ttl):
    off, rows = make_log(tmp_path)
    # event times are unique per (id, et) with overwhelming probability; make ties explicit below
    rng = np.random.default_rng(9)
    ents = pd.DataFrame({"user_id": rng.integers(0, 45, 800),
                         "ts": T0 + rng.integers(-3600, 4 * 86400, 800).astype(float)})
    # some entity timestamps exactly on a feature event time: "at or before" must include it
    ents.loc[:49, "user_id"] = [r[0] for r in rows[:50]]
    ents.loc[:49, "ts"] = [r[1] for r in rows[:50]]
    got = point_in_time_join(off, SPEC, ents, timestamp_column="ts", ttl=ttl)
    want = brute_force(rows, ents, ttl)
    assert len(got) == len(ents) and (got["ts"].to_numpy() == ents["ts"].to_numpy()).all()
    for i, (x, n, s) in enumerate(want):
        gx, gn, gs = got.loc[i, "x"], got.loc[i, "n"], got.loc[i, "s"]
        if x is None:
            assert pd.isna(gx) and pd.isna(gn) and pd.isna(gs), i
        else:
            assert gx == x and gn == n and gs == s, i
    assert got["x"].notna().sum() > 200  # the test exercises real matches


def test_no_leakage_and_ties(tmp_path):
    off = OfflineStore(tmp_path)
    off.append(SPEC, [Record("1", T0 + 100, {"user_id": 1, "et": T0 + 100, "x": 1.0})], api_invocation_time=T0)
    off.append(SPEC, [Record("1", T0 + 100, {"user_id": 1, "et": T0 + 100, "x": 2.0})], api_invocation_time=T0 + 1)
    off.append(SPEC, [Record("1", T0 + 200, {"user_id": 1, "et": T0 + 200, "x": 3.0})], api_invocation_time=T0 + 2)
    ents = pd.DataFrame({"user_id": [1, 1, 1, 1],
                         "event_timestamp": pd.to_datetime([T0 + 99, T0 + 100, T0 + 199.999, T0 + 200], unit="s",
                                                           utc=True)})
    got = point_in_time_join(off, SPEC, ents, features=["x"])
    assert got["x"].tolist()[1:] == [1.0, 1.0, 3.0] and math.isnan(got["x"][0])
    assert list(got.columns) == ["user_id", "event_timestamp", "x"]
    got = point_in_time_join(off, SPEC, ents, features=["x"], ttl=timedelta(seconds=50))
    assert got["x"].isna().tolist() == [True, False, True, False]


def test_entity_timestamps_in_mixed_iso_spellings(tmp_path):
    """One column may mix ISO-8601 spellings (pandas alone guesses one format from the first row and fails)."""
    off = OfflineStore(tmp_path)
    off.append(SPEC, [Record("1", T0 + 43200, {"user_id": 1, "et": T0 + 43200, "x": 1.0})], api_invocation_time=T0)
    ents = pd.DataFrame({"user_id": [1, 1, 1, 1], "event_timestamp": [
        "2026-01-01T12:00:00Z", "2026-01-01", "2026-01-01 13:00:00.250+02:00", "2026-01-02"]})
    assert point_in_time_join(off, SPEC, ents, features=["x"])["x"].isna().tolist() == [False, True, True, False]
    with pytest.raises(ValueError, match="event_timestamp: entity timestamps must be numbers .* or dates"):
        point_in_time_join(off, SPEC, ents.assign(event_timestamp=["2026-01-01", "soon", "2026-01-01", "2026-01-01"]))


def test_empty_log_and_bad_input(tmp_path):
    ents = pd.DataFrame({"user_id": [1], "event_timestamp": [T0]})
    got = point_in_time_join(OfflineStore(tmp_path), SPEC, ents)
    assert got[["x", "n", "s"]].isna().all(axis=None)
    with pytest.raises(ValueError, match="missing column"):
        point_in_time_join(OfflineStore(tmp_path), SPEC, ents.drop(columns="user_id"))
    with pytest.raises(ValueError, match="unknown features"):
        point_in_time_join(OfflineStore(tmp_path), SPEC, ents, features=["nope"])


def test_offline_layout_is_hour_partitioned_by_event_time(tmp_path):
    off = OfflineStore(tmp_path)
    off.append(SPEC, [Record("1", T0 + 3600 * 5 + 1, {"user_id": 1, "et": T0 + 3600 * 5 + 1}),
                      Record("2", T0 + 30, {"user_id": 2, "et": T0 + 30})])
    names = sorted(str(p.relative_to(tmp_path)) for p in off.files(SPEC))
    assert [n.rsplit("/", 1)[0] for n in names] == [
        "users/data/year=2026/month=01/day=01/hour=00", "users/data/year=2026/month=01/day=01/hour=05"]
    assert names[0].rsplit("/", 1)[1].startswith("20260101T000030Z_")
    t = off.read(SPEC)
    assert set(t.column_names) >= {"write_time", "api_invocation_time", "is_deleted"} and t.num_rows == 2


BIG = FeatureGroupSpec.model_validate({
    "name": "big", "record_identifier": "id", "event_time": "et",
    "features": [{"FeatureName": "id", "FeatureType": "Integral"}, {"FeatureName": "et", "FeatureType": "Fractional"},
                 {"FeatureName": "v", "FeatureType": "Integral"}, {"FeatureName": "f", "FeatureType": "Fractional"}]})


def test_integral_features_stay_exact_beyond_2_53(tmp_path):
    """Integral is a 64-bit integer: values near 2^62 and 2^63 - 1 come back exact even when some rows have none."""
    off = OfflineStore(tmp_path)
    ids = [2**62 + 1, 2**62 + 3, 2**63 - 1, -(2**62) - 7]
    vals = [2**62 + 11, 360348196039533007, 2**63 - 1, -(2**63)]
    off.append(BIG, [Record(str(i), T0, {"id": i, "et": T0, "v": v, "f": 0.5}) for i, v in zip(ids, vals)])
    ents = pd.DataFrame({"id": ids + [5], "event_timestamp": [T0 + 1] * 4 + [T0 + 1]})  # id 5: no value
    got = point_in_time_join(off, BIG, ents)
    assert str(got["v"].dtype) == "Int64" and str(got["f"].dtype) == "float64"
    assert got["v"].tolist()[:4] == vals and got["v"].isna().tolist() == [False] * 4 + [True]
    early = point_in_time_join(off, BIG, ents.assign(event_timestamp=T0 - 1))  # every row empty: still Int64
    assert str(early["v"].dtype) == "Int64" and early["v"].isna().all()


def test_ties_in_one_append_resolve_as_online(tmp_path):
    """Many ids, each written several times with one event time inside ONE append: the first written wins offline
    (write_seq), exactly as in the online store, for every id."""
    from featurestore.settings import FeatureStoreSettings
    from featurestore.store import FeatureStore

    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path)), [BIG])
    rng = np.random.default_rng(4)
    n_ids = 300
    recs = []
    for copy in range(4):  # four versions of every id, same event time, shuffled together
        for i in rng.permutation(n_ids):
            et = T0 + int(i) % 7
            recs.append(Record(str(i), et, {"id": int(i), "et": et, "v": copy * 1000 + int(i)}))
    rng.shuffle(recs)
    store.write_batch(BIG, recs)
    first = {}
    for r in recs:
        first.setdefault(int(r.record_id), r.values["v"])
    got = store.get_records("big", [str(i) for i in range(n_ids)])
    online = {i: g.values["v"] for i, g in enumerate(got)}
    got = point_in_time_join(store.offline(BIG), BIG, pd.DataFrame({"id": range(n_ids), "event_timestamp": T0 + 10}))
    offline = dict(zip(got["id"], got["v"]))
    assert online == first  # online: an equal event time is not newer
    assert offline == online, [i for i in online if offline[i] != online[i]][:10]
    assert len({v // 1000 for v in first.values()}) == 4  # the winners are spread over all four versions
    t = store.offline(BIG).read(BIG)
    seq = t.column("write_seq").to_numpy()
    assert len(np.unique(seq)) == len(seq) == len(recs)
