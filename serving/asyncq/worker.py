"""The asynchronous worker: a Ray Serve deployment that takes queued requests and runs them through its
own data plane (the endpoint's variants, as the gateway builds them), writing each result to its
OutputLocation, or the error to its FailureLocation, then finishing the request in the queue.

A worker renews its claim's lease while a request runs, and writes the result (to a temporary name, then
renamed) before it finishes the request; `finish` succeeds for one claim only. A worker killed before the
rename leaves the request claimed: after its lease it is run again. One killed between the rename and the
finish leaves a complete result in place: the next claim finishes the request with it, without running or
writing it again. Either way a request ends once, with one result. A finished request is then announced
(serving.asyncq.notify) when the endpoint asks for notifications.

The worker's series (the data plane's for protocol `async`, requests finished, processing seconds, requests
in flight, notifications) reach the gateway's /metrics through the metrics hub, like every replica's.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
from fsspec.core import url_to_fs
from ray import serve

from core.errors import FerryError, InferenceError
from serving.adapters.async_ import MAX_PAYLOAD, AsyncExchange, failure_doc
from serving import metrics_hub
from serving.asyncq.notify import Notifier, message
from serving.asyncq.sqlite import Claimed, SqliteQueue
from serving.dataplane import DataPlane
from serving.metrics import ASYNC_IN_FLIGHT, ASYNC_NOTIFICATIONS, ASYNC_PROCESSING, ASYNC_REQUESTS, ServingMetrics
from serving.spec import EndpointSpec, ModelSpec, ServerSpec
from serving.variants import Remote

log = logging.getLogger(__name__)
IDLE_POLL_S = 0.2
MAX_POLL_INTERVAL_MS = (3600 + 300) * 1000  # a consumer whose slots are all busy polls again within this


@serve.deployment
class AsyncWorker:
    """Works the queues of the asynchronous endpoints."""

    def __init__(self, endpoints: list[EndpointSpec], models: dict[str, ModelSpec], server: ServerSpec,
                 remote: dict[str, Remote], kafka_bootstrap: str | None = None):
        from serving.gateway import _endpoint

        self.specs = {ep.name: ep.async_inference for ep in endpoints if ep.async_inference is not None}
        metrics = ServingMetrics()
        self.plane = DataPlane({ep.name: _endpoint(ep, models, remote, kafka_bootstrap, metrics=metrics,
                                                   gateway_replicas=server.gateway_replicas)
                                for ep in endpoints if ep.name in self.specs},
                               server.max_payload_bytes, metrics=metrics, limits={"async": MAX_PAYLOAD})
        self.queues = {name: SqliteQueue(spec.queue_path) for name, spec in self.specs.items()
                       if spec.queue == "sqlite"}
        self.instrument(metrics.registry, kafka_bootstrap)
        self.reporter = metrics_hub.reporter_for(self.registry)
        loop = asyncio.get_event_loop()
        self.sources: dict = {}
        self.tasks = [loop.create_task(self._work(name, slot)) for name, spec in self.specs.items()
                      if spec.queue == "sqlite" for slot in range(spec.max_concurrent_invocations)]
        self.tasks += [loop.create_task(self._work_kafka(name, kafka_bootstrap)) for name, spec in self.specs.items()
                       if spec.queue == "kafka"]

    def instrument(self, registry, kafka_bootstrap: str | None = None) -> None:
        """The worker's own series in `registry`, and a notifier per endpoint that asks for notifications."""
        self.registry = registry
        self.requests, self.processing = ASYNC_REQUESTS.client(registry), ASYNC_PROCESSING.client(registry)
        self.in_flight, notifications = ASYNC_IN_FLIGHT.client(registry), ASYNC_NOTIFICATIONS.client(registry)
        for name in self.specs:
            self.in_flight.labels(name)
        self.notifiers = {
            name: Notifier(name, spec.notification, kafka_bootstrap,
                           lambda channel, outcome, name=name: notifications.labels(name, channel, outcome).inc())
            for name, spec in self.specs.items() if spec.notification is not None}

    def __del__(self):
        """Ray Serve calls this on replica shutdown: stop pushing metrics, leave the Kafka groups."""
        if getattr(self, "reporter", None) is not None:
            self.reporter.stop()
        for source in getattr(self, "sources", {}).values():
            source.close()

    async def _work_kafka(self, endpoint: str, kafka_bootstrap: str) -> None:
        """Take an endpoint's records from Kafka (serving.asyncq.kafka), running up to
        max_concurrent_invocations at once, committing each partition's offsets once its records are done."""
        from serving.asyncq.kafka import KafkaSource, Ledger, topic_and_group

        spec = self.specs[endpoint]
        slots = spec.max_concurrent_invocations
        topic, group = topic_and_group(spec, endpoint)
        notifier = self.notifiers.get(endpoint)
        transactional = notifier is not None and bool(notifier.spec.success_topic or notifier.spec.error_topic)
        source = None
        while source is None:
            try:  # Kafka notifications go in the offset commits' transactions: once for read_committed readers
                source = await asyncio.to_thread(KafkaSource, kafka_bootstrap, topic, group, slots,
                                                 MAX_POLL_INTERVAL_MS, asyncio.get_running_loop(), transactional)
            except Exception:  # noqa: BLE001 - the broker not reachable yet: try again
                log.exception("async worker %s: cannot join the Kafka group %s", endpoint, group)
                await asyncio.sleep(2)
        self.sources[endpoint] = source
        await self.consume(endpoint, source, Ledger(source), slots)

    async def consume(self, endpoint: str, source, ledger, slots: int, stop: asyncio.Event | None = None) -> None:
        """The consuming loop of one Kafka source (until `stop` is set: tests). Two records of one inference id
        (a client that retried its put) run one after the other: the second finds the first one's result."""
        running = source.running
        by_id: dict[str, asyncio.Future] = {}
        while stop is None or not stop.is_set():
            try:
                if len(running) >= slots:
                    await asyncio.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
                else:
                    for claimed in await asyncio.to_thread(source.poll, slots - len(running)):
                        key = (claimed.partition, claimed.offset)
                        task = asyncio.ensure_future(self._record(endpoint, ledger, claimed, source, key,
                                                                  by_id.get(claimed.id)))
                        running[key] = by_id[claimed.id] = task
                        task.add_done_callback(lambda t, rid=claimed.id: by_id.pop(rid, None) if by_id.get(rid)
                                               is t else None)
                await asyncio.to_thread(source.commit)
            except Exception:  # noqa: BLE001 - the loop never dies; uncommitted records are delivered again
                log.exception("async worker %s: Kafka loop", endpoint)
                await asyncio.sleep(1)

    async def _record(self, endpoint: str, ledger, claimed, source, key, after: asyncio.Future | None = None) -> None:
        """Run one record until it is finished (an infrastructure error is retried: its offset stays
        uncommitted meanwhile, unless its partition is being handed over: then it is left to the next owner),
        then mark it done for the next commit."""
        gauge = self.in_flight.labels(endpoint)
        gauge.inc()
        try:
            if after is not None:
                await asyncio.wait([after])
            for attempt in range(1_000_000):
                try:
                    await self.process(endpoint, ledger, claimed)
                    break
                except Exception:  # noqa: BLE001 - e.g. the output location unwritable for a while
                    log.exception("async request %s (attempt %d)", claimed.id, attempt + 1)
                    wait_until = time.monotonic() + min(30, 2 ** attempt)
                    while time.monotonic() < wait_until:
                        if claimed.partition in source.revoking:
                            return  # handed over: the next owner tries it
                        await asyncio.sleep(0.1)
            source.offsets.done(claimed.partition, claimed.offset)
        finally:
            gauge.dec()
            source.running.pop(key, None)
            source.offsets.end(claimed.partition, claimed.offset)

    async def _work(self, endpoint: str, slot: int) -> None:
        queue, lease_s = self.queues[endpoint], self.specs[endpoint].lease_s
        while True:
            try:
                claimed = await asyncio.to_thread(queue.claim, endpoint, lease_s)
                if claimed is None:
                    await asyncio.sleep(IDLE_POLL_S)
                    continue
                await self.leased(endpoint, queue, claimed, lease_s)
            except Exception:  # noqa: BLE001 - a worker slot never dies; the request is retried after its lease
                log.exception("async worker %s/%d", endpoint, slot)
                await asyncio.sleep(1)

    async def leased(self, endpoint: str, queue: SqliteQueue, claimed: Claimed, lease_s: float) -> None:
        """Process a claimed request, renewing its lease every third of it; stop when the claim is lost."""
        task = asyncio.ensure_future(self.process(endpoint, queue, claimed))
        gauge = self.in_flight.labels(endpoint)
        gauge.inc()
        try:
            while not (await asyncio.wait({task}, timeout=lease_s / 3))[0]:
                if not await asyncio.to_thread(queue.renew, claimed, lease_s):
                    task.cancel()
                    log.warning("async request %s: its lease was lost; it is left to the worker that took it",
                                claimed.id)
                    return
            task.result()
        finally:
            gauge.dec()

    async def process(self, endpoint: str, queue: SqliteQueue, claimed: Claimed) -> None:
        doc = orjson.loads(claimed.doc)
        start = time.perf_counter()
        if claimed.attempts > 1 and await self._earlier_result(endpoint, queue, claimed, doc, start):
            return
        if claimed.expires_at is not None and time.time() > claimed.expires_at:
            error = InferenceError(400, "ExpiredRequest", "DEADLINE_EXCEEDED",
                                   "the request waited longer than its RequestTTLSeconds and was not processed")
            body = failure_doc(error)
            await asyncio.to_thread(_write, doc["failure"], body)
            await self._finish(endpoint, queue, claimed, "expired", error.message, start, doc, body)
            return
        ex = AsyncExchange(endpoint, claimed.id, doc)
        try:
            await asyncio.wait_for(self.plane.infer(ex), doc["timeout_s"])
        except (FerryError, TimeoutError) as err:
            error = err.error if isinstance(err, FerryError) else InferenceError(
                424, "ModelError", "DEADLINE_EXCEEDED", f"no answer within {doc['timeout_s']} s "
                                                        "(InvocationTimeoutSeconds)")
            body = failure_doc(error)
            await asyncio.to_thread(_write, doc["failure"], body)
            await self._finish(endpoint, queue, claimed, "failed", error.message, start, doc, body)
            return
        await asyncio.to_thread(_write, doc["output"], ex.response)
        await self._finish(endpoint, queue, claimed, "succeeded", None, start, doc, ex.response)

    async def _earlier_result(self, endpoint, queue, claimed, doc, start) -> bool:
        """Finish a request taken again whose earlier attempt left a complete result in place (its worker
        died before finishing it); False when there is none and the request must run."""
        body = None
        if await asyncio.to_thread(_exists, doc["output"]):
            state, reason = "succeeded", None
        elif await asyncio.to_thread(_exists, doc["failure"]):
            body = await asyncio.to_thread(_read, doc["failure"])
            error = orjson.loads(body)
            state = "expired" if error.get("ErrorCode") == "ExpiredRequest" else "failed"
            reason = error.get("Message")
        else:
            return False
        log.info("async request %s: finished with the result of an earlier attempt", claimed.id)
        await self._finish(endpoint, queue, claimed, state, reason, start, doc, body)
        return True

    async def _finish(self, endpoint, queue, claimed, state, reason, start, doc, body) -> None:
        """Finish the request in the queue (this claim only), count it, then announce it."""
        if await asyncio.to_thread(queue.finish, claimed, state, reason):
            self.requests.labels(endpoint, state).inc()
            self.processing.labels(endpoint).observe(time.perf_counter() - start)
            notifier = self.notifiers.get(endpoint)
            if notifier is not None:
                msg = message(endpoint, claimed.id, doc, state, reason, claimed.accepted_at, time.time(),
                              body if notifier.wants_body else None)
                topic = notifier.kafka_topic(msg)
                # on the Kafka queue, in its offset commit's transaction
                staged = bool(topic) and queue.stage(claimed, topic, claimed.id.encode(), orjson.dumps(msg),
                                                     lambda: notifier.count("kafka", "sent"))
                notifier.send(msg, kafka=not staged)
        else:
            log.warning("async request %s: its claim was lost (lease expired); another worker finishes it", claimed.id)


def _exists(location: str) -> bool:
    fs, path = url_to_fs(location)
    return fs.isfile(path)


def _read(location: str) -> bytes:
    fs, path = url_to_fs(location)
    return fs.cat_file(path)


def _write(location: str, data: bytes) -> None:
    """Write a result whole under a temporary name, then rename it into place."""
    fs, path = url_to_fs(location)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path + ".tmp", data)
    fs.mv(path + ".tmp", path)
