"""Online stores: the latest record per id, behind one interface; a backend is a module and one line here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Union

from pydantic import Field

from featurestore.online.base import OnlineStore, StoredRecord, StoreUnavailable
from featurestore.online.redis import RedisOnlineStore
from featurestore.online.sqlite import SQLiteOnlineStore

BACKENDS: dict[str, type[OnlineStore]] = {"sqlite": SQLiteOnlineStore, "redis": RedisOnlineStore}

OnlineConfig = Annotated[Union[tuple(b.config_class for b in BACKENDS.values())], Field(discriminator="type")]


def open_online_store(config, data_dir: str | Path) -> OnlineStore:
    """The online store a backend config describes (relative paths under data_dir)."""
    return BACKENDS[config.type].from_config(config, Path(data_dir))


__all__ = ["BACKENDS", "OnlineConfig", "OnlineStore", "StoreUnavailable", "StoredRecord", "open_online_store"]
