"""Feature group validation: names, reserved names, types, collections; errors name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from featurestore.spec import FeatureGroupSpec, TtlDuration

BASE = {"name": "g", "record_identifier": "id", "event_time": "ts",
        "features": [{"name": "id", "type": "String"}, {"name": "ts", "type": "String"},
                     {"name": "x", "type": "Fractional"}]}


def with_features(*extra, **top):
    return {**BASE, "features": BASE["features"] + list(extra), **top}


def test_valid_group_and_defaults():
    g = FeatureGroupSpec.model_validate(with_features({"FeatureName": "v", "FeatureType": "Fractional",
                                                       "CollectionType": "Vector", "Dimension": 4}))
    assert g.kafka_topic == "ferry.features.g" and g.online_store.enabled and g.offline_store.enabled
    assert g.feature("v").dimension == 4
    assert TtlDuration(Unit="Weeks", Value=2).seconds() == 1_209_600


@pytest.mark.parametrize("data,needle", [
    ({**BASE, "name": "-bad"}, "feature group name"),
    ({**BASE, "name": "x" * 65}, "feature group name"),
    (with_features({"name": "is_deleted", "type": "Integral"}), "reserved"),
    (with_features({"name": "write_time", "type": "Integral"}), "reserved"),
    (with_features({"name": "x", "type": "Integral"}), "duplicate"),
    (with_features({"name": "bad name", "type": "Integral"}), "feature name"),
    (with_features({"name": "y", "type": "Boolean"}), "type"),
    ({**BASE, "record_identifier": "nope"}, "record_identifier"),
    ({**BASE, "event_time": "nope"}, "event_time"),
    ({**BASE, "record_identifier": "x"}, "record_identifier"),
    ({**BASE, "event_time": "id"}, "must differ"),
    (with_features({"name": "v", "type": "Integral", "collection": "Vector", "dimension": 2}), "Fractional"),
    (with_features({"name": "v", "type": "Fractional", "collection": "Vector"}), "dimension"),
    (with_features({"name": "v", "type": "Fractional", "collection": "Vector", "dimension": 9000}), "dimension"),
    (with_features({"name": "l", "type": "String", "collection": "List", "dimension": 2}), "dimension"),
    (with_features({"name": "v1", "type": "Fractional", "collection": "Vector", "dimension": 2},
                   {"name": "v2", "type": "Fractional", "collection": "Vector", "dimension": 2}), "one Vector"),
    (with_features(online_store={"enabled": False}, offline_store={"enabled": False}), "enable at least one"),
    (with_features(online_store={"ttl": {"Unit": "Years", "Value": 1}}), "online_store.ttl"),
    (with_features(online_store={"ttl": {"Unit": "Days", "Value": 0}}), "online_store.ttl"),
    ({**BASE, "surprise": 1}, "surprise"),
])
def test_invalid_groups_name_the_problem(data, needle):
    with pytest.raises(ValidationError) as e:
        FeatureGroupSpec.model_validate(data)
    assert needle in str(e.value)
