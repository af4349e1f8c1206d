"""The demo's feature group: credit applicants keyed by applicant_id, holding the demo model's inputs."""

from __future__ import annotations

import time

import pandas as pd

from featurestore.spec import FeatureGroupSpec
from featurestore.store import FeatureStore

FRACTIONAL = ["income", "debt_ratio", "credit_history_months", "num_open_accounts", "loan_amount"]
INTEGRAL = ["age", "employment_code", "housing_code"]
STRINGS = ["age_group", "employment", "housing"]


def applicant_feature_group(name: str = "applicants") -> FeatureGroupSpec:
    """Applicant features keyed by applicant_id; event time in unix seconds (Fractional)."""
    feats = [{"FeatureName": "applicant_id", "FeatureType": "Integral"},
             {"FeatureName": "event_time", "FeatureType": "Fractional"}]
    feats += [{"FeatureName": f, "FeatureType": "Integral"} for f in INTEGRAL]
    feats += [{"FeatureName": f, "FeatureType": "Fractional"} for f in FRACTIONAL]
    feats += [{"FeatureName": f, "FeatureType": "String"} for f in STRINGS]
    return FeatureGroupSpec(name=name, record_identifier="applicant_id", event_time="event_time", features=feats,
                            description="Demo credit applicants (ferry demo)")


def load_applicants(store: FeatureStore, df: pd.DataFrame, event_time: float | None = None,
                    group: str = "applicants") -> int:
    """Write a demo table (the columns that are features of the group) online and offline; returns rows."""
    spec = store.group(group)
    cols = [c for c in spec.feature_names if c in df.columns and c != spec.event_time]
    data = df[cols].copy()
    data[spec.event_time] = float(time.time() if event_time is None else event_time)
    for c in cols:
        if c in INTEGRAL or c == spec.record_identifier:
            data[c] = data[c].astype("int64")
        elif c in FRACTIONAL:
            data[c] = data[c].astype("float64")
    parser = store.parser(group)
    records = [parser.parse(r) for r in data.to_dict("records")]
    store.write_batch(spec, records)
    return len(records)
