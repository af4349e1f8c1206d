"""Where the feature store keeps its data: the online backend, the data folder, the Kafka brokers."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from core.schema import Strict
from featurestore.online import BACKENDS, OnlineConfig
from featurestore.online.sqlite import SQLiteConfig
from featurestore.spec import FeatureGroupSpec


class FeatureStoreSettings(Strict):
    """The embedded default is SQLite + local Parquet; ferry.yaml's `redis` section selects Redis."""

    online: OnlineConfig = Field(default_factory=SQLiteConfig, description="the online backend's config, "
                                 "chosen by its `type` (sqlite, redis); a bare type name takes its defaults")
    data_dir: str = Field(".ferry/features", description="folder for the SQLite file, Parquet log and registry")
    kafka_bootstrap_servers: str = "127.0.0.1:9092"

    @field_validator("online", mode="before")
    @classmethod
    def _type_name(cls, v: Any) -> Any:
        if isinstance(v, str):
            if v not in BACKENDS:
                raise ValueError(f"unknown online store {v!r} (one of: {', '.join(BACKENDS)})")
            return {"type": v}
        return v


class FeatureStoreConfig(Strict):
    """A deploy file's feature store as the serving side gets it (the REST API and the lookup steps, across the
    Ray boundary): where its data lives and its groups, validated once when the deploy file is read."""

    settings: FeatureStoreSettings = Field(default_factory=FeatureStoreSettings)
    groups: list[FeatureGroupSpec] = Field(default_factory=list)
