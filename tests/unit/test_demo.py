import numpy as np
import pandas as pd

from ferry.config import load_config
from ferry.demo import MODEL_FEATURES, make_credit_data, model_matrix, write_demo
from featurestore.lookup import FeatureLookup
from featurestore.store import FeatureStore


def test_generator_is_seeded_and_biased():
    a, b = make_credit_data(2000, seed=5), make_credit_data(2000, seed=5)
    pd.testing.assert_frame_equal(a, b)
    rates = a.groupby("age_group")["approved"].mean()
    assert rates["under_25"] < rates["25_to_60"] - 0.15  # the injected bias is visible


def test_write_demo_makes_a_valid_deploy_file_and_loads_the_feature_store(tmp_path):
    cfg = load_config(write_demo(tmp_path, n_rows=400), environ={})
    assert [e.name for e in cfg.endpoints] == ["credit-risk"] and cfg.feature_groups[0].name == "applicants"
    store = FeatureStore(cfg.feature_store_settings(tmp_path), cfg.feature_groups)
    try:
        test = pd.read_csv(tmp_path / "test.csv")
        got = FeatureLookup(store, "applicants", MODEL_FEATURES)(test["applicant_id"].tolist())
        np.testing.assert_allclose(got, model_matrix(test), rtol=1e-6)
    finally:
        store.close()
