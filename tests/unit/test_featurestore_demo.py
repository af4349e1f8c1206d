"""The demo feature group feeds the demo model: lookup by applicant_id reproduces model_matrix exactly."""

from __future__ import annotations

import numpy as np

from featurestore.demo import applicant_feature_group, load_applicants
from featurestore.lookup import FeatureLookup
from featurestore.settings import FeatureStoreSettings
from featurestore.store import FeatureStore
from ferry.demo import MODEL_FEATURES, make_credit_data, model_matrix


def test_demo_group_lookup_equals_model_matrix(tmp_path):
    df = make_credit_data(2000, seed=3)
    m = model_matrix(df)
    df["employment_code"] = m[:, 6].astype(int)
    df["housing_code"] = m[:, 7].astype(int)
    store = FeatureStore(FeatureStoreSettings(data_dir=str(tmp_path)), [applicant_feature_group()])
    assert load_applicants(store, df, event_time=1_767_225_600.0) == 2000
    ids = df["applicant_id"].to_numpy()[::-7]
    x = FeatureLookup(store, "applicants", MODEL_FEATURES)(ids)
    np.testing.assert_array_equal(x, m[::-7])
    assert store.get_record("applicants", "1", ["age_group"])["Record"][0]["ValueAsString"] == df["age_group"][0]
