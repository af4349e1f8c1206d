"""The inference-pipeline lookup step: float32 matrix in the requested order, clear error for unknown ids."""

from __future__ import annotations

import numpy as np
import pytest

from featurestore.demo import applicant_feature_group
from featurestore.lookup import FeatureLookup, UnknownRecordsError
from featurestore.online.sqlite import SQLiteOnlineStore
from featurestore.records import RecordError
from featurestore.settings import FeatureStoreSettings
from featurestore.store import FeatureStore


@pytest.fixture
def online(tmp_path):
    s = SQLiteOnlineStore(tmp_path / "online.db")
    yield s
    s.close()


@pytest.fixture
def store(tmp_path, online):
    fs = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path)), [applicant_feature_group()], online=online)
    fs.online.drop_group(fs.group("applicants"))
    fs.online.create_group(fs.group("applicants"))
    for i in range(50):
        fs.put_record("applicants", {"applicant_id": i, "event_time": 1000.0 + i, "age": 20 + i,
                                     "income": 1000.5 * i, "debt_ratio": i / 100, "housing": "rent"})
    fs.delete_record("applicants", "49", 5000.0)
    return fs


def test_matrix_in_requested_order(store):
    partial = FeatureLookup(store, "applicants", ["loan_amount", "age"])([3])  # a feature never written: NaN
    assert np.isnan(partial[0, 0]) and partial[0, 1] == 23
    x = FeatureLookup(store, "applicants", ["income", "age", "debt_ratio"])([3, 1, 3, 10])
    assert x.dtype == np.float32 and x.shape == (4, 3)
    np.testing.assert_allclose(x, np.array([[3001.5, 23, 0.03], [1000.5, 21, 0.01], [3001.5, 23, 0.03],
                                            [10005.0, 30, 0.1]], dtype=np.float32))


def test_unknown_and_deleted_ids_are_named(store):
    step = FeatureLookup(store, "applicants", ["age"])
    with pytest.raises(UnknownRecordsError) as e:
        step([1, 999, 49, 2])
    assert e.value.missing == ["999", "49"] and "999, 49" in str(e.value)
    x = FeatureLookup(store, "applicants", ["age"], on_missing="nan")([1, 999])
    assert x[0, 0] == 21 and np.isnan(x[1, 0])


def test_bad_step_configuration(store):
    with pytest.raises(RecordError, match="unknown feature"):
        FeatureLookup(store, "applicants", ["nope"])
    with pytest.raises(RecordError, match="not a numeric scalar"):
        FeatureLookup(store, "applicants", ["housing"])
