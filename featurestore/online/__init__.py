"""Online stores: the latest record per id, behind one interface (SQLite embedded default, Redis)."""

from featurestore.online.base import OnlineStore, StoredRecord
from featurestore.spec import FeatureStoreSettings


def open_online_store(settings: FeatureStoreSettings) -> OnlineStore:
    """The online store the settings name."""
    if settings.online == "redis":
        from featurestore.online.redis import RedisOnlineStore

        return RedisOnlineStore(settings.redis_url)
    from pathlib import Path

    from featurestore.online.sqlite import SQLiteOnlineStore

    return SQLiteOnlineStore(Path(settings.data_dir) / "online.db")


__all__ = ["OnlineStore", "StoredRecord", "open_online_store"]
