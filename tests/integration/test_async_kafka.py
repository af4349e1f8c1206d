"""The Kafka queue of asynchronous requests on the real broker, with the worker's code (without Ray): 12
accepted requests (10 to answer, a rejected payload, an expired one) on a fresh topic; a first worker takes
5 of them, writes their results and dies before committing (as kill -9 would leave it); a second worker of the
same group gets all 12 again, finishes the 5 with the results in place - not run, not rewritten - and runs
the other 7. Lost 0, completed twice 0; the group's lag (the autoscaler's backlog) goes from 12 to 0, and
the status route says Pending for a queued request, reads the locations once finished and refuses an
unknown id; the oldest request's age is exported.

A rebalance while records run: worker A runs 9 records (8 requests, one of them put twice), held in the
model until worker B joins the group; A finishes them and commits before its partitions move, so B starts
after them and runs none again; the repeated id runs after the first and finds its result (each request
run once)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from kafka.admin import KafkaAdminClient

from core.errors import FerryError
from serving.adapters.async_ import AsyncFrontDoor
from serving.asyncq import scaling
from serving.asyncq.kafka import KafkaQueue, KafkaSource, Ledger, consumer_lag, topic_and_group
from serving.spec import AsyncSpec
from tests.integration.services import kafka_bootstrap  # noqa: F401 - fixture
from tests.unit.test_async_worker import put, worker


@pytest.fixture
def spec(kafka_bootstrap, tmp_path):  # noqa: F811
    s = AsyncSpec(output_path=str(tmp_path / "out"), failure_path=str(tmp_path / "err"), queue="kafka", topic=f"ferry.test.async-q-{uuid.uuid4().hex[:8]}",
                  partitions=2, max_concurrent_invocations=2)
    yield s
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.delete_topics([s.topic])
    finally:
        admin.close()


class DiesBeforeCommitting(KafkaSource):
    """A worker's source that hands out `limit` records, never commits, then is killed."""

    limit = 5
    given = 0

    def poll(self, free):
        if self.given >= self.limit:
            return []
        out = super().poll(min(free, self.limit - self.given))
        self.given += len(out)
        return out

    def commit(self):
        pass


def invocations(w) -> float:
    """Requests the worker's data plane ran (any outcome)."""
    return sum(s.value for m in w.plane.metrics.registry.collect() for s in m.samples
               if s.name == "ferry_invocations_total")


async def consume_until(w, source, done) -> None:
    stop = asyncio.Event()
    loop = asyncio.create_task(w.consume("ep", source, Ledger(), 2, stop))
    for _ in range(600):
        if await asyncio.to_thread(done):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("not done within 60 s")
    stop.set()
    await loop


def test_a_worker_dying_before_its_commits_loses_nothing_and_completes_nothing_twice(demo_dir, tmp_path, spec,
                                                                                   kafka_bootstrap):  # noqa: F811
    topic, group = topic_and_group(spec, "ep")
    queue = KafkaQueue(kafka_bootstrap, topic, group, spec.partitions)
    rows = np.loadtxt(demo_dir / "test_features.csv", delimiter=",", max_rows=30)
    labels = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows.astype(np.float32)})[0]
    body = b"\n".join((demo_dir / "test_features.csv").read_bytes().splitlines()[:30])
    docs = {f"r{i}": put(queue, tmp_path, f"r{i}", body) for i in range(10)}
    docs["bad"] = put(queue, tmp_path, "bad", b"1,2,3\n")
    docs["old"] = put(queue, tmp_path, "old", b"1,2,3,4,5,6,7,8\n", ttl_s=-1)
    assert consumer_lag(kafka_bootstrap, topic, group) == 12
    door = AsyncFrontDoor("ep", spec, queue)  # before any worker: every request Pending, the oldest aged
    pending = orjson.loads(door.status_from_locations("r3").body)
    assert pending["Status"] == "Pending" and pending["AcceptedAt"] <= time.time()
    n, age = queue.backlog("ep")
    assert n == 12 and age >= time.time() - pending["AcceptedAt"] - 1 and age > 0
    ref = scaling.queue_ref(spec, "ep", kafka_bootstrap)
    assert scaling.read_backlog(ref, "ep") == 12

    def written() -> list[str]:
        return [r for r, d in docs.items() if os.path.exists(d["output"]) or os.path.exists(d["failure"])]

    async def first_worker():
        w = worker(demo_dir)
        w.specs["ep"] = spec
        source = DiesBeforeCommitting(kafka_bootstrap, topic, group, 2, 60_000, asyncio.get_running_loop())
        await consume_until(w, source, lambda: len(written()) >= 5 and not source.running)
        source.close(commit=False)  # killed: nothing committed
        return w

    asyncio.run(first_worker())
    first = written()
    assert len(first) == 5 and consumer_lag(kafka_bootstrap, topic, group) == 12
    stamps = {r: os.stat(docs[r]["output"] if os.path.exists(docs[r]["output"]) else docs[r]["failure"]).st_mtime_ns
              for r in first}

    async def second_worker():
        w = worker(demo_dir)
        w.specs["ep"] = spec
        source = KafkaSource(kafka_bootstrap, topic, group, 2, 60_000, asyncio.get_running_loop())
        await consume_until(w, source, lambda: consumer_lag(kafka_bootstrap, topic, group) == 0)
        source.close()
        return w

    w = asyncio.run(second_worker())
    assert sorted(written()) == sorted(docs)  # lost 0
    for r in first:  # finished with the earlier attempt's result: not run again, not rewritten
        path = docs[r]["output"] if os.path.exists(docs[r]["output"]) else docs[r]["failure"]
        assert os.stat(path).st_mtime_ns == stamps[r]
    ran_first = len([r for r in first if r != "old"])  # an expired request never reaches the model
    assert invocations(w) == 11 - ran_first  # the second worker ran only the others: completed twice 0
    for i in range(10):
        assert [int(ln.split(",")[0]) for ln in open(docs[f"r{i}"]["output"]).read().splitlines()] == labels.tolist()
    assert orjson.loads(open(docs["bad"]["failure"], "rb").read())["ErrorCode"] == "ValidationError"
    assert orjson.loads(open(docs["old"]["failure"], "rb").read())["ErrorCode"] == "ExpiredRequest"
    for outcome, n in (("succeeded", 10), ("failed", 1), ("expired", 1)):
        assert w.registry.get_sample_value("ferry_async_requests_total", {"endpoint": "ep", "outcome": outcome}) == n

    door = AsyncFrontDoor("ep", spec, queue)
    states = {r: orjson.loads(door.status_from_locations(r).body)["Status"] for r in ("r0", "bad", "old")}
    assert states == {"r0": "Completed", "bad": "Failed", "old": "Expired"}
    with pytest.raises(FerryError) as unknown:  # an id the queue never held is not Pending
        door.status_from_locations("nobody")
    assert unknown.value.error.status == 404
    assert queue.backlog("ep") == (0, 0.0)
    queue.close()


def test_a_rebalance_hands_partitions_over_only_after_their_running_records(demo_dir, tmp_path, spec,
                                                                          kafka_bootstrap):  # noqa: F811
    topic, group = topic_and_group(spec, "ep")
    queue = KafkaQueue(kafka_bootstrap, topic, group, spec.partitions)
    body = b"\n".join((demo_dir / "test_features.csv").read_bytes().splitlines()[:20])
    docs = {f"r{i}": put(queue, tmp_path, f"r{i}", body) for i in range(8)}
    put(queue, tmp_path, "r0", body)  # a client that retried: the same inference id twice on the topic
    queue.close()

    async def run():
        stop = asyncio.Event()
        a, b = worker(demo_dir), worker(demo_dir)
        a.specs["ep"] = b.specs["ep"] = spec
        source_a = await asyncio.to_thread(KafkaSource, kafka_bootstrap, topic, group, 16, 60_000)
        infer = a.plane.infer

        async def held_until_the_rebalance(ex):  # A's records are in the model when B joins
            for _ in range(400):
                if source_a.revoking:
                    break
                await asyncio.sleep(0.05)
            return await infer(ex)

        a.plane.infer = held_until_the_rebalance
        loop_a = asyncio.create_task(a.consume("ep", source_a, Ledger(), 16, stop))
        for _ in range(300):
            if source_a.offsets.busy({tp for tp in source_a.offsets.pending}) == 9:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("worker A did not take the 9 records")
        source_b = await asyncio.to_thread(KafkaSource, kafka_bootstrap, topic, group, 16, 60_000)
        loop_b = asyncio.create_task(b.consume("ep", source_b, Ledger(), 16, stop))
        for _ in range(600):
            if (await asyncio.to_thread(consumer_lag, kafka_bootstrap, topic, group) == 0
                    and source_b.consumer.assignment()):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the records were not all committed within 60 s")
        await asyncio.sleep(1)  # B polls its partition: nothing is delivered again
        stop.set()
        await asyncio.gather(loop_a, loop_b)
        for source in (source_a, source_b):
            source.close()
        return a, b

    a, b = asyncio.run(run())
    assert all(os.path.exists(d["output"]) for d in docs.values())
    finished = [w.registry.get_sample_value("ferry_async_requests_total", {"endpoint": "ep", "outcome": "succeeded"})
                or 0 for w in (a, b)]
    # each request run once (the second r0 waited for the first and found its result), by A only
    assert (invocations(a), invocations(b)) == (8, 0) and finished == [9, 0]


FIRST_WORKER = r"""
import asyncio, os, signal, sys
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

import serving.asyncq.kafka as kq
from serving.spec import AsyncSpec
from tests.unit.test_async_worker import worker

bootstrap, notes, demo, spec_json = sys.argv[1:]
kq.SESSION_TIMEOUT_MS = 6000  # the broker's least: the partition and an open transaction move on sooner


def die_once_the_notification_is_on_the_broker(flush):
    flush()
    seen = KafkaConsumer(notes, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                         isolation_level="read_uncommitted", consumer_timeout_ms=20_000)
    next(iter(seen))
    os.kill(os.getpid(), signal.SIGKILL)


# killed between notifying and committing the record's offset, whichever way the worker commits it
KafkaProducer.commit_transaction = lambda self: die_once_the_notification_is_on_the_broker(self.flush)
KafkaConsumer.commit = lambda self, offsets=None: die_once_the_notification_is_on_the_broker(lambda: None)
spec = AsyncSpec.model_validate_json(spec_json)
w = worker(Path(demo), spec.notification.model_dump(), bootstrap)
w.specs["ep"], w.sources = spec, {}
asyncio.run(w._work_kafka("ep", bootstrap))
"""


def test_a_worker_killed_between_notifying_and_committing_notifies_once(demo_dir, tmp_path, spec, kafka_bootstrap,
                                                                       monkeypatch):  # noqa: F811
    import subprocess
    import sys

    from kafka import KafkaConsumer
    from kafka.admin import NewTopic

    import serving.asyncq.kafka as kq
    from serving.spec import NotificationSpec

    notes = f"{spec.topic}.notes"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(notes, 1, 1)])
    spec = spec.model_copy(update={"notification": NotificationSpec(success_topic=notes, error_topic=notes)})
    topic, group = topic_and_group(spec, "ep")
    queue = KafkaQueue(kafka_bootstrap, topic, group, spec.partitions)
    body = b"\n".join((demo_dir / "test_features.csv").read_bytes().splitlines()[:20])
    doc = put(queue, tmp_path, "r0", body)
    queue.close()
    try:
        first = subprocess.run([sys.executable, "-c", FIRST_WORKER, kafka_bootstrap, notes, str(demo_dir),
                                spec.model_dump_json()], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert first.returncode == -9, first.stderr[-3000:]  # killed after the notification reached the broker
        assert os.path.exists(doc["output"]) and consumer_lag(kafka_bootstrap, topic, group) == 1

        async def second_worker():  # takes the record again: finished with its result, notified again
            monkeypatch.setattr(kq, "SESSION_TIMEOUT_MS", 6000)
            w = worker(demo_dir, spec.notification.model_dump(), kafka_bootstrap)
            w.specs["ep"], w.sources = spec, {}
            task = asyncio.create_task(w._work_kafka("ep", kafka_bootstrap))
            for _ in range(600):
                if await asyncio.to_thread(consumer_lag, kafka_bootstrap, topic, group) == 0:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the record was not committed within 60 s")
            task.cancel()
            w.sources["ep"].close()
            return w

        w = asyncio.run(second_worker())
        assert invocations(w) == 0  # not run again: its result was in place

        def read(isolation: str) -> list[str]:
            """The notifications a reader gets: a read_committed one waits at the dead worker's open transaction
            until the broker aborts it (its timeout, then the broker's next clean-up: 10 s at most)."""
            consumer = KafkaConsumer(notes, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                     isolation_level=isolation)
            got, deadline = [], time.monotonic() + 60
            while not got and time.monotonic() < deadline:
                got += [orjson.loads(r.value)["inferenceId"] for b in consumer.poll(500).values() for r in b]
            end = time.monotonic() + 2  # then anything more that came with it
            while time.monotonic() < end:
                got += [orjson.loads(r.value)["inferenceId"] for b in consumer.poll(500).values() for r in b]
            consumer.close()
            return got

        assert read("read_uncommitted") == ["r0", "r0"]  # the dead worker's notification reached the broker,
        assert read("read_committed") == ["r0"]  # in a transaction that was aborted: a reader sees one
        assert w.registry.get_sample_value("ferry_async_notifications_total",
                                           {"endpoint": "ep", "channel": "kafka", "outcome": "sent"}) == 1
    finally:
        admin.delete_topics([notes])
        admin.close()
