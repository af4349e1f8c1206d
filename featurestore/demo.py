"""The demo's feature group: credit applicants keyed by applicant_id."""

from __future__ import annotations

from featurestore.spec import FeatureGroupSpec

APPLICANT_FEATURES = ["age", "income", "debt_ratio", "credit_history_months", "num_open_accounts", "loan_amount"]


def applicant_feature_group(name: str = "applicants") -> FeatureGroupSpec:
    """Numeric applicant features (the demo model's inputs) plus categories, keyed by applicant_id."""
    feats = [{"FeatureName": "applicant_id", "FeatureType": "Integral"},
             {"FeatureName": "event_time", "FeatureType": "Fractional"},
             {"FeatureName": "age", "FeatureType": "Integral"}]
    feats += [{"FeatureName": f, "FeatureType": "Fractional"} for f in APPLICANT_FEATURES[1:]]
    feats += [{"FeatureName": f, "FeatureType": "String"} for f in ("age_group", "employment", "housing")]
    return FeatureGroupSpec(name=name, record_identifier="applicant_id", event_time="event_time", features=feats,
                            description="Demo credit applicants (ferry demo)")
