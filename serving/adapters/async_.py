"""Asynchronous inference, SageMaker's InvokeEndpointAsync: the front door and the worker's exchange.

`POST /endpoints/{name}/async-invocations` (boto3 `invoke_endpoint_async` unchanged) checks the request
and queues it durably, then answers 202 at once with `{"InferenceId", "OutputLocation",
"FailureLocation"}` and the `X-Amzn-SageMaker-OutputLocation` / `-FailureLocation` headers. The payload
stays at its InputLocation, which must lie under one of the endpoint's `async.input_prefixes`: the gateway
never reads it. `GET /endpoints/{name}/async-invocations/{id}` gives a request's status.

A worker (serving.asyncq.worker) takes queued requests and hands each, as an `AsyncExchange`, to the data
plane: the same decoding, model call, metrics and capture as a synchronous call (protocol `async`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

import orjson
from fsspec.core import url_to_fs
from starlette.responses import Response

from core import payloads
from core.errors import FerryError, InferenceError, bad_request, not_found, too_large, unavailable
from serving.adapters.http import authorized, header, headers_of, json_response
from serving.adapters.sagemaker import error_response
from serving.asyncq.sqlite import SqliteQueue
from serving.dataplane import DataPlane, Exchange, ModelResult, Payload
from serving.spec import AsyncSpec

log = logging.getLogger(__name__)
MAX_PAYLOAD = 1024 ** 3  # SageMaker's 1 GB
LARGE_CSV = 4 * 1024 * 1024  # CSV bodies above this are parsed by pandas' C reader
STATES = {"queued": "Queued", "running": "InProgress", "succeeded": "Completed", "failed": "Failed",
          "expired": "Expired"}


def _int(headers, name: str, low: int, high: int, default: int) -> int:
    value = header(headers, name.lower().encode())
    if value is None:
        return default
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise FerryError(bad_request(f"{name} must be a whole number of seconds from {low} to {high}, "
                                     f"got {value[:40]!r}"))
    return int(value)


def allowed(location: str, prefixes: list[str]) -> bool:
    """Whether `location` lies under one of `prefixes` (local paths compared after resolving '..' and links)."""
    if "://" in location and not location.startswith("file://"):
        return any(location.startswith(p.rstrip("/") + "/") for p in prefixes if "://" in p)
    path = os.path.realpath(location.removeprefix("file://"))
    for p in prefixes:
        if "://" in p and not p.startswith("file://"):
            continue
        root = os.path.realpath(p.removeprefix("file://"))
        if os.path.commonpath([path, root]) == root:
            return True
    return False


class AsyncFrontDoor:
    """One asynchronous endpoint's routes."""

    def __init__(self, endpoint: str, spec: AsyncSpec, queue: SqliteQueue):
        self.endpoint = endpoint
        self.spec = spec
        self.queue = queue

    async def handle(self, plane: DataPlane, request, rest: list[str], method: str) -> Response:
        try:
            request = await authorized(plane, request)
            if not rest and method == "POST":
                return await self.accept(request)
            if len(rest) == 1 and method == "GET":
                return await asyncio.to_thread(self.status, rest[0])
            raise FerryError(not_found(f"no route {method} for async-invocations"))
        except FerryError as err:
            return error_response(err.error)

    async def accept(self, request) -> Response:
        h = headers_of(request)
        location = header(h, b"x-amzn-sagemaker-inputlocation")
        if not location:
            raise FerryError(bad_request("X-Amzn-SageMaker-InputLocation is required: the payload's path or URI, "
                                         "under one of the endpoint's async.input_prefixes"))
        if not allowed(location, self.spec.input_prefixes):
            raise FerryError(bad_request(f"InputLocation {location[:200]!r} is outside the locations this endpoint "
                                         f"reads (async.input_prefixes)"))
        content_type = header(h, b"x-amzn-sagemaker-content-type") or "application/json"
        codec = payloads.codec_for(content_type)
        if codec is None or codec.media_type not in payloads.RESPONSE_TYPES:
            raise FerryError(payloads.unsupported(content_type))
        accept = payloads.choose_accept(header(h, b"x-amzn-sagemaker-accept"), content_type)
        ttl = _int(h, "X-Amzn-SageMaker-RequestTTLSeconds", 60, 21600, 21600)
        timeout = _int(h, "X-Amzn-SageMaker-InvocationTimeoutSeconds", 1, 3600, 900)
        inference_id = header(h, b"x-amzn-sagemaker-inference-id") or str(uuid.uuid4())
        if not 1 <= len(inference_id) <= 64 or "/" in inference_id:
            raise FerryError(bad_request("X-Amzn-SageMaker-Inference-Id must be 1-64 characters, without '/'"))
        attributes = header(h, b"x-amzn-sagemaker-custom-attributes")
        if attributes is not None and len(attributes) > 1024:
            raise FerryError(bad_request("X-Amzn-SageMaker-Custom-Attributes is longer than 1024 characters"))
        size = await asyncio.to_thread(_size, location)
        if size > MAX_PAYLOAD:
            raise FerryError(too_large(f"the input is {size} bytes, above the 1 GB asynchronous payload limit"))
        output, failure = self.locations(inference_id)
        doc = {"input": location, "content_type": content_type, "accept": accept, "custom_attributes": attributes,
               "output": output, "failure": failure, "timeout_s": timeout}
        try:
            await asyncio.to_thread(self.queue.put, self.endpoint, inference_id, orjson.dumps(doc).decode(),
                                    time.time() + ttl)
        except Exception as err:  # noqa: BLE001 - the queue (Kafka broker, disk) did not take it: nothing accepted
            log.warning("async endpoint %s: the queue did not take request %s", self.endpoint, inference_id,
                        exc_info=True)
            raise FerryError(unavailable(f"the request queue did not take the request ({type(err).__name__}); "
                                         "nothing was accepted: retry")) from None
        return Response(orjson.dumps({"InferenceId": inference_id, "OutputLocation": output,
                                      "FailureLocation": failure}), status_code=202, media_type="application/json",
                        headers={"X-Amzn-SageMaker-OutputLocation": output,
                                 "X-Amzn-SageMaker-FailureLocation": failure})

    def locations(self, inference_id: str) -> tuple[str, str]:
        """(OutputLocation, FailureLocation) of a request."""
        output = f"{self.spec.output_path.rstrip('/')}/{inference_id}.out"
        failure = f"{(self.spec.failure_path or self.spec.output_path).rstrip('/')}/{inference_id}-error.out"
        return output, failure

    def status(self, inference_id: str) -> Response:
        if self.spec.queue == "kafka":
            return self.status_from_locations(inference_id)
        found = self.queue.status(inference_id)
        if found is None or found["endpoint"] != self.endpoint:
            raise FerryError(not_found(f"no asynchronous request {inference_id[:80]!r} on endpoint {self.endpoint}"))
        doc = orjson.loads(found["doc"])
        return json_response({"InferenceId": inference_id, "Status": STATES[found["state"]],
                              "OutputLocation": doc["output"], "FailureLocation": doc["failure"],
                              "FailureReason": found["reason"], "AcceptedAt": found["accepted_at"],
                              "FinishedAt": found["finished_at"], "Attempts": found["attempts"]})


    def status_from_locations(self, inference_id: str) -> Response:
        """A request's status on the Kafka queue: Completed, Failed or Expired once its output or failure is in
        place, Pending while the queue holds it (queued or running: a record past the workers' committed
        offsets), 404 otherwise. The queue is asked first: a request finishes (result in place) before its
        offset is committed, so one that leaves the queue between the two looks is found at its location."""
        if not 1 <= len(inference_id) <= 64 or "/" in inference_id:
            raise FerryError(not_found(f"no asynchronous request {inference_id[:80]!r} on endpoint {self.endpoint}"))
        accepted_at = self.queue.pending(inference_id)
        output, failure = self.locations(inference_id)
        state, reason = "Pending", None
        if _exists(output):
            state = "Completed"
        elif _exists(failure):
            fs, path = url_to_fs(failure)
            error = orjson.loads(fs.cat_file(path))
            state = "Expired" if error.get("ErrorCode") == "ExpiredRequest" else "Failed"
            reason = error.get("Message")
        elif accepted_at is None:
            raise FerryError(not_found(f"no asynchronous request {inference_id[:80]!r} on endpoint {self.endpoint}"))
        return json_response({"InferenceId": inference_id, "Status": state, "OutputLocation": output,
                              "FailureLocation": failure, "FailureReason": reason, "AcceptedAt": accepted_at})


def _exists(location: str) -> bool:
    fs, path = url_to_fs(location)
    return fs.isfile(path)


def _size(location: str) -> int:
    fs, path = url_to_fs(location)
    try:
        if not fs.isfile(path):
            raise FileNotFoundError(path)
        return fs.size(path)
    except (FileNotFoundError, PermissionError, OSError) as err:
        raise FerryError(bad_request(f"InputLocation {location[:200]!r} cannot be read: {type(err).__name__}")) from None


class AsyncExchange(Exchange):
    """One queued request, read from its InputLocation by the worker."""

    protocol = "async"

    def __init__(self, endpoint: str, inference_id: str, doc: dict):
        super().__init__(endpoint)
        self.inference_id = inference_id
        self.doc = doc
        self.body = b""
        self.response = b""

    async def read(self, limit: int) -> None:
        size = await asyncio.to_thread(_size, self.doc["input"])
        if size > limit:
            raise FerryError(too_large(f"the input is {size} bytes, above the {limit}-byte limit"))
        fs, path = url_to_fs(self.doc["input"])
        self.body = await asyncio.to_thread(fs.cat_file, path)

    def decode(self) -> Payload:
        codec = payloads.codec_for(self.doc["content_type"])
        if len(self.body) > LARGE_CSV and codec.media_type == "text/csv":
            matrix = _large_csv(self.body)
            if matrix is not None:
                return Payload(matrix=matrix)
        decoded = codec.decode(self.body)
        return Payload(named=decoded) if isinstance(decoded, dict) else Payload(matrix=decoded)

    def encode(self, result: ModelResult) -> None:
        self.response = payloads.CODECS[self.doc["accept"]].encode(result.outputs)

    def captured(self) -> tuple[bytes, str, bytes, str]:
        return self.body, self.doc["content_type"], self.response, self.doc["accept"]


def _large_csv(body: bytes):
    """A large CSV body parsed by pandas' C reader, in a fraction of the codec's time and memory (the codec
    splits every value into a Python string); None when the body is not a clean numeric matrix, so that the
    codec's decode says exactly what is wrong (row, column)."""
    import io

    import numpy as np
    import pandas as pd

    try:
        matrix = pd.read_csv(io.BytesIO(body), header=None, dtype=np.float64, engine="c").to_numpy()
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    return None if np.isnan(matrix).any() else matrix  # a short row reads as NaN: let the codec name it


def failure_doc(error: InferenceError) -> bytes:
    return orjson.dumps({"ErrorCode": error.error_type, "Message": error.message})


def front_doors(endpoints, kafka_bootstrap: str | None = None) -> dict[str, AsyncFrontDoor]:
    """The front door of each asynchronous endpoint (endpoints sharing a queue file share a connection; an
    endpoint on the Kafka queue puts its requests on its topic)."""
    queues: dict[str, SqliteQueue] = {}
    doors = {}
    for ep in endpoints:
        spec = ep.async_inference
        if spec is None:
            continue
        if spec.queue == "kafka":
            from serving.asyncq.kafka import KafkaQueue, topic_and_group

            topic, group = topic_and_group(spec, ep.name)
            queue = KafkaQueue(kafka_bootstrap, topic, group, spec.partitions or spec.scaling.max_instances)
        else:
            queue = queues.get(spec.queue_path) or queues.setdefault(spec.queue_path, SqliteQueue(spec.queue_path))
        doors[ep.name] = AsyncFrontDoor(ep.name, spec, queue)
    return doors


async def route(doors: dict[str, AsyncFrontDoor], plane: DataPlane, request, parts: list[str], method: str):
    """`/endpoints/{name}/async-invocations[/{id}]`."""
    door = doors.get(parts[1])
    if door is None:
        try:
            await authorized(plane, request)
            plane.endpoint(parts[1])
        except FerryError as err:
            return error_response(err.error)
        return error_response(bad_request(f"endpoint {parts[1][:80]} is not asynchronous (its deploy file entry "
                                          "has no async section)"))
    return await door.handle(plane, request, parts[3:], method)


def backlog_exposition(doors: dict[str, AsyncFrontDoor]) -> bytes:
    """ferry_async_backlog_requests and ferry_async_oldest_request_age_seconds, read from the queues now."""
    from prometheus_client import CollectorRegistry, generate_latest

    from serving.metrics import ASYNC_BACKLOG, ASYNC_OLDEST

    registry = CollectorRegistry()
    backlog, oldest = ASYNC_BACKLOG.client(registry), ASYNC_OLDEST.client(registry)
    for name, door in doors.items():
        n, age = door.queue.backlog(name)
        backlog.labels(name).set(n)
        oldest.labels(name).set(age)
    return generate_latest(registry)
