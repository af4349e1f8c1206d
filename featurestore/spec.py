"""Feature group declarations (the `feature_groups:` entries of ferry.yaml, or CreateFeatureGroup bodies).

Names, types and limits follow SageMaker Feature Store: Integral / Fractional / String features, List / Set /
Vector collections, reserved names, a record identifier and an event time feature that must be declared.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from core.schema import Strict

NAME_RE = re.compile(r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$")  # feature groups and features alike
RESERVED_NAMES = frozenset({"is_deleted", "write_time", "api_invocation_time", "write_seq"})
MAX_VECTOR_DIMENSION = 8192


class _Strict(Strict):
    """Also accepts SageMaker's spellings (the field aliases)."""

    model_config = ConfigDict(populate_by_name=True)  # extra="forbid" from Strict


def _check_name(kind: str, v: str) -> str:
    if not NAME_RE.match(v):
        raise ValueError(f"{kind} {v!r} must be 1-64 letters, digits, '-' or '_' "
                         "and start and end with a letter or digit")
    return v


class FeatureType(str, Enum):
    INTEGRAL = "Integral"
    FRACTIONAL = "Fractional"
    STRING = "String"


class CollectionType(str, Enum):
    LIST = "List"
    SET = "Set"
    VECTOR = "Vector"


class FeatureDefinition(_Strict):
    """One typed feature; collections hold elements of `type`."""

    name: str = Field(alias="FeatureName", description="1-64 chars, letters, digits, '-' and '_'")
    type: FeatureType = Field(alias="FeatureType")
    collection: CollectionType | None = Field(None, alias="CollectionType")
    dimension: int | None = Field(None, alias="Dimension", ge=1, le=MAX_VECTOR_DIMENSION,
                                  description="Vector length (Vector collections only)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        _check_name("feature name", v)
        if v in RESERVED_NAMES:
            raise ValueError(f"feature name {v!r} is reserved ({', '.join(sorted(RESERVED_NAMES))})")
        return v

    @model_validator(mode="after")
    def _collection(self) -> "FeatureDefinition":
        if self.collection is CollectionType.VECTOR:
            if self.type is not FeatureType.FRACTIONAL:
                raise ValueError(f"feature {self.name!r}: a Vector must be Fractional")
            if self.dimension is None:
                raise ValueError(f"feature {self.name!r}: a Vector needs a dimension")
        elif self.dimension is not None:
            raise ValueError(f"feature {self.name!r}: dimension is only for Vector collections")
        return self


class TtlDuration(_Strict):
    """How long an online record stays readable after its event time."""

    unit: Literal["Seconds", "Minutes", "Hours", "Days", "Weeks"] = Field("Seconds", alias="Unit")
    value: int = Field(alias="Value", ge=1)

    def seconds(self) -> float:
        return float(self.value * {"Seconds": 1, "Minutes": 60, "Hours": 3600, "Days": 86400,
                                   "Weeks": 604800}[self.unit])


class OnlineStoreConfig(_Strict):
    enabled: bool = True
    ttl: TtlDuration | None = Field(None, description="group-level TTL; a record-level TtlDuration overrides it")


class OfflineStoreConfig(_Strict):
    enabled: bool = True
    path: str | None = Field(None, description="folder of the Parquet log (default: <data dir>/offline)")


class FeatureGroupSpec(_Strict):
    """A feature group: typed features keyed by a record identifier, ordered by an event time."""

    name: str = Field(description="1-64 chars, letters, digits, '-' and '_'")
    record_identifier: str = Field(description="name of the feature holding the record id")
    event_time: str = Field(description="name of the feature holding the event time "
                                        "(String ISO-8601 or Fractional unix seconds)")
    features: list[FeatureDefinition] = Field(min_length=1)
    online_store: OnlineStoreConfig = Field(default_factory=OnlineStoreConfig)
    offline_store: OfflineStoreConfig = Field(default_factory=OfflineStoreConfig)
    topic: str | None = Field(None, description="Kafka topic fed to this group (default ferry.features.<name>)")
    description: str | None = Field(None, max_length=128)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name("feature group name", v)

    @model_validator(mode="after")
    def _check(self) -> "FeatureGroupSpec":
        names = [f.name for f in self.features]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"features: duplicate feature names {dup}")
        by_name = {f.name: f for f in self.features}
        rid = by_name.get(self.record_identifier)
        if rid is None:
            raise ValueError(f"record_identifier: {self.record_identifier!r} is not among the features")
        if rid.collection is not None or rid.type is FeatureType.FRACTIONAL:
            raise ValueError(f"record_identifier: {rid.name!r} must be a scalar Integral or String")
        et = by_name.get(self.event_time)
        if et is None:
            raise ValueError(f"event_time: {self.event_time!r} is not among the features")
        if et.collection is not None or et.type is FeatureType.INTEGRAL:
            raise ValueError(f"event_time: {et.name!r} must be a scalar String (ISO-8601) or Fractional "
                             "(unix seconds)")
        if self.event_time == self.record_identifier:
            raise ValueError("event_time: must differ from record_identifier")
        if sum(f.collection is CollectionType.VECTOR for f in self.features) > 1:
            raise ValueError("features: at most one Vector feature per group")
        if not self.online_store.enabled and not self.offline_store.enabled:
            raise ValueError("online_store/offline_store: enable at least one of the two")
        return self

    @property
    def kafka_topic(self) -> str:
        return self.topic or f"ferry.features.{self.name}"

    def feature(self, name: str) -> FeatureDefinition:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

