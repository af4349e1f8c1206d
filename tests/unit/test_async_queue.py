"""The embedded async queue: a put is idempotent by inference id, a claim is leased, a request is finished
once, and what a killed worker held is claimed again after its lease (across processes: a second
connection to the same file stands for the restarted server)."""

from __future__ import annotations

import time

from serving.asyncq.sqlite import SqliteQueue


def test_put_claim_finish_once(tmp_path):
    q = SqliteQueue(tmp_path / "q.db")
    assert q.put("ep", "a", "{}", None) and not q.put("ep", "a", "{}", None)  # a retried put: no second request
    q.put("ep", "b", "{}", None)
    q.put("other", "c", "{}", None)
    assert q.backlog("ep")[0] == 2
    first = q.claim("ep", lease_s=60)
    assert first.id == "a" and first.attempts == 1
    assert q.claim("ep", lease_s=60).id == "b" and q.claim("ep", lease_s=60) is None
    assert q.finish(first, "succeeded") and not q.finish(first, "succeeded")
    assert q.status("a")["state"] == "succeeded" and q.status("a")["doc"] == "{}" and q.backlog("ep")[0] == 1


def test_a_lost_lease_is_claimed_again_and_the_old_claim_cannot_finish(tmp_path):
    q = SqliteQueue(tmp_path / "q.db")
    q.put("ep", "a", "{}", None)
    held = q.claim("ep", lease_s=0.2)  # the worker holding it is killed
    restarted = SqliteQueue(tmp_path / "q.db")
    assert restarted.claim("ep", lease_s=60) is None  # still leased
    time.sleep(0.3)
    again = restarted.claim("ep", lease_s=60)
    assert again.id == "a" and again.attempts == 2
    assert not q.finish(held, "succeeded")  # the lost claim
    assert restarted.finish(again, "succeeded")
    assert restarted.status("a")["state"] == "succeeded"


def test_a_renewed_lease_is_kept_and_a_lost_one_cannot_be_renewed(tmp_path):
    q = SqliteQueue(tmp_path / "q.db")
    q.put("ep", "a", "{}", None)
    held = q.claim("ep", lease_s=0.3)
    for _ in range(3):  # the worker renews while it works: never claimed by another
        time.sleep(0.15)
        assert q.renew(held, 0.3) and q.claim("ep", lease_s=60) is None
    time.sleep(0.4)  # the worker stalls past its lease
    again = q.claim("ep", lease_s=60)
    assert again.attempts == 2 and not q.renew(held, 0.3) and not q.finish(held, "succeeded")
