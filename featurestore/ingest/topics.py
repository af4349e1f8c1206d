"""Topic admin: create the source and DLQ topics a worker needs, so it may start before any producer."""

from __future__ import annotations

import logging
from typing import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)


def ensure_topics(bootstrap_servers: str, topics: Iterable[str]) -> None:
    """Create the missing ones among `topics` with the broker's default partitions and replication."""
    wanted = list(topics)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    except KafkaError as e:
        log.warning("cannot check topics: %s", e)
        return
    try:
        missing = [t for t in wanted if t not in set(admin.list_topics())]
        if missing:
            admin.create_topics([NewTopic(t, -1, -1) for t in missing])
            log.info("created topics %s", missing)
    except TopicAlreadyExistsError:
        pass
    except KafkaError as e:  # e.g. no permission: auto-creation or an operator may provide them
        log.warning("could not create topics %s: %s", wanted, e)
    finally:
        admin.close()
