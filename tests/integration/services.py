"""Fixtures for the real Kafka and Redis started by `.ci/services start` (imported by conftest.py).

A test that needs a server which does not answer fails with the reason; it never skips.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

KAFKA_BOOTSTRAP = os.environ.get("FERRY_TEST_KAFKA", "127.0.0.1:9092")
REDIS_URL = os.environ.get("FERRY_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """host:port of the real Kafka broker."""
    host, port = KAFKA_BOOTSTRAP.split(",")[0].rsplit(":", 1)
    if not _reachable(host, int(port)):
        pytest.fail(f"Kafka is not answering at {KAFKA_BOOTSTRAP}: run `.ci/services start` first", pytrace=False)
    return KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def redis_url() -> str:
    """redis:// URL of the real Redis server."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as e:
        pytest.fail(f"Redis is not answering at {REDIS_URL} ({e}): run `.ci/services start` first", pytrace=False)
    return REDIS_URL


@pytest.fixture
def kafka_topic(kafka_bootstrap) -> str:
    """A fresh topic name (4 partitions) for one test, deleted afterwards with its DLQ."""
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"ferry.test.{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(name, 4, 1), NewTopic(name + ".dlq", 1, 1)])
    yield name
    try:
        admin.delete_topics([name, name + ".dlq"])
    finally:
        admin.close()


def online_config(kind: str, url: str) -> dict:
    """FeatureStoreSettings.online for a parametrized backend name: SQLite, or Redis at `url`."""
    return {"type": "redis", "url": url} if kind == "redis" else {"type": kind}
