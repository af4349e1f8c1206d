"""The record-semantics and lookup suites (tests/unit/test_featurestore_{semantics,lookup}.py) on a real Redis server."""

from __future__ import annotations

import threading

import pytest

from featurestore.online.redis import RedisOnlineStore
from featurestore.records import Record
from tests.integration.services import redis_url  # noqa: F401  (fixture)
from tests.unit.test_featurestore_lookup import (  # noqa: F401  (the lookup step on Redis)
    store, test_bad_step_configuration, test_matrix_in_requested_order, test_unknown_and_deleted_ids_are_named)
from tests.unit.test_featurestore_semantics import *  # noqa: F401,F403  (the same tests, Redis backend)


@pytest.fixture
def online(redis_url):  # noqa: F811
    s = RedisOnlineStore(redis_url)
    yield s
    s.close()


def test_concurrent_writers_never_regress(fs, online):
    """Writers racing with shuffled event times: the stored record ends at the maximum event time."""
    import random

    spec = fs.group(fs.g)
    times = list(range(1, 401))

    def writer(seed):
        rnd = random.Random(seed)
        ts = times[:]
        rnd.shuffle(ts)
        s = RedisOnlineStore(online.url)
        for chunk in range(0, len(ts), 50):
            s.put_many(spec, [Record("hot", float(t), {"customer_id": "hot", "age": t}) for t in ts[chunk:chunk + 50]],
                       now=0.0)
        s.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = online.get_many(spec, ["hot"], now=0.0)[0]
    assert got.event_time == 400.0 and got.values["age"] == 400
