"""The data plane: every inference operation, protocol-neutral, in one class.

Protocol adapters (SageMaker routes, KServe V2 REST, V2 gRPC; later the async and transform front doors)
only convert their wire format: each wraps one request in an `Exchange` and hands it to `DataPlane.infer`,
which owns everything else, in this order: authentication, the payload limit, decoding (through the
exchange, so a malformed body is counted like any other failure), the endpoint's variant choice, the
model call, encoding, metrics for every outcome, and data capture. MLServer's `DataPlane` and KServe's
`protocol/dataplane.py` are the models. Nothing here imports Ray: unit tests drive it with in-process
variants.
"""

from __future__ import annotations

import hmac
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from core.errors import FerryError, InferenceError, internal_error, not_found, quote, unauthorized
from serving import sigv4
from serving.endpoint import Endpoint
from serving.metrics import ServingMetrics
from serving.wire import wire, wire_dict

log = logging.getLogger(__name__)
PROTOCOLS = ("sagemaker", "v2", "grpc")


@dataclass(slots=True)
class Payload:
    """What the model receives: a row matrix (SageMaker CSV/JSON/NPY) or named tensors (V2, JSON inputs)."""

    matrix: np.ndarray | None = None
    named: dict[str, np.ndarray] | None = None
    strict_dtype: bool = False  # V2 clients declare datatypes; SageMaker bodies are cast to the model's

    def __reduce_ex__(self, protocol):  # a hop's request: arrays as raw buffers (serving.wire)
        return Payload, (wire(self.matrix, protocol), wire_dict(self.named, protocol), self.strict_dtype)


@dataclass(slots=True)
class ModelResult:
    """A variant's answer: outputs, or an error value (errors cross Ray as values, never as exceptions)."""

    variant: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    error: InferenceError | None = None
    batch_size: int = 1
    model_seconds: float = 0.0

    def __reduce_ex__(self, protocol):  # a hop's result: arrays as raw buffers (serving.wire)
        return ModelResult, (self.variant, wire_dict(self.outputs, protocol), self.error, self.batch_size,
                             self.model_seconds)


class Exchange(ABC):
    """One inference request and its response in one protocol's wire format.

    Adapters subclass it; the data plane calls, in order: `read` (bounded), `decode`, `encode`, and, when
    the request is sampled for capture, `captured`."""

    protocol = ""
    credentials: str | None = None  # the Authorization value (HTTP header, gRPC metadata)
    http_scope: dict | None = None  # an HTTP request's ASGI scope (a SigV4 signature covers its method, path...)
    body = b""  # the request body, once read
    target_variant: str | None = None
    inference_id: str | None = None
    output_names: list[str] | None = None
    # `captured` only hands back bytes and strings it already holds: the capture takes them at once and lets the
    # exchange go (a queued exchange keeps its request's objects alive for the garbage collector to walk)
    captured_now = False

    def __init__(self, endpoint: str):
        self.endpoint = endpoint

    async def read(self, limit: int) -> None:
        """Receive the request body, refusing it (413) past `limit` bytes without reading it whole."""

    @abstractmethod
    def decode(self) -> Payload:
        """The request as a row matrix or named tensors; FerryError (4xx) when malformed."""

    @abstractmethod
    def encode(self, result: ModelResult) -> None:
        """Turn the outputs into this protocol's response (kept on the exchange for the adapter)."""

    @abstractmethod
    def captured(self) -> tuple[bytes, str, bytes, str]:
        """(input body, its content type, output body, its content type) for the capture record."""


class DataPlane:
    """Live, ready, metadata and infer for every endpoint, whatever the protocol."""

    def __init__(self, endpoints: dict[str, Endpoint], max_payload_bytes: int, auth_token: str | None = None,
                 metrics: ServingMetrics | None = None, limits: dict[str, int] | None = None,
                 sigv4_verifier: sigv4.SigV4Verifier | None = None):
        """`limits` overrides max_payload_bytes per protocol (gRPC has its own message size); with
        `sigv4_verifier`, AWS SigV4-signed HTTP requests pass too."""
        self.endpoints = endpoints
        self.names = sorted(endpoints)
        self.max_payload_bytes = max_payload_bytes
        self.limits = limits or {}
        self._token = f"Bearer {auth_token}".encode() if auth_token else None
        self._sigv4 = sigv4_verifier
        self._open = self._token is None and sigv4_verifier is None  # no credentials to check
        self.metrics = metrics or ServingMetrics()
        for name, ep in endpoints.items():
            for variant in ep.runners:
                self.metrics.declare(name, variant, PROTOCOLS)

    # --- the operations

    def authorize(self, credentials: str | None, http_scope: dict | None = None) -> sigv4.PendingSignature | None:
        """Pass (None), or raise 401/403, when a bearer token or SigV4 is configured. The bearer token passes
        here; an AWS SigV4 `Authorization` of an HTTP request (its ASGI scope) passes its header, key and date
        checks here and returns the signature check, which the caller runs on the body once it is read."""
        if self._open:
            return None
        if self._token is not None and hmac.compare_digest((credentials or "").encode(), self._token):
            return None
        if self._sigv4 is not None and credentials and credentials.startswith("AWS4-"):
            if http_scope is None:
                raise FerryError(unauthorized("AWS SigV4 signatures are checked on HTTP routes; gRPC takes the "
                                              "bearer token"))
            return self._sigv4.begin(credentials, http_scope)
        if self._token is not None:
            also = " or AWS SigV4 signature" if self._sigv4 is not None else ""
            raise FerryError(unauthorized(f"missing or wrong bearer token{also}"))
        raise sigv4.missing(credentials)

    def endpoint(self, name: str) -> Endpoint:
        ep = self.endpoints.get(name)
        if ep is None:
            raise FerryError(not_found(f"endpoint {quote(name)} not found; endpoints: {self.names}"))
        return ep

    async def ready(self) -> bool:
        for ep in self.endpoints.values():
            if not await ep.ready():
                return False
        return bool(self.endpoints)

    async def model_ready(self, name: str, version: str | None = None) -> bool:
        return await self.endpoint(name).ready(version)

    async def model_metadata(self, name: str, version: str | None = None) -> dict:
        meta = await self.endpoint(name).metadata(version)
        if meta is None:
            raise FerryError(not_found(f"model {quote(name)} has no version {quote(version)}"))
        return {"name": name, "versions": meta["versions"], "platform": "onnx_onnxv1",
                "inputs": meta["inputs"], "outputs": meta["outputs"]}

    async def infer(self, ex: Exchange) -> ModelResult:
        """Run one inference end to end; raises FerryError (already counted) with the reason."""
        start = time.perf_counter()
        ep = self.endpoints.get(ex.endpoint)
        variant = ""
        try:
            signed = None if self._open else self.authorize(ex.credentials, ex.http_scope)
            if ep is None:
                self.endpoint(ex.endpoint)
            await ex.read(self.limits.get(ex.protocol, self.max_payload_bytes))
            if signed is not None:
                signed.verify(ex.body)
            payload = ex.decode()
            variant, runner = ep.pick(ex.target_variant)
            result = await runner.infer(payload, ex.output_names)
            if result.error is not None:
                raise FerryError(result.error)
            ex.encode(result)
        except FerryError as err:
            self.metrics.failed(ep.name if ep else "", variant, ex.protocol, err.error,
                                time.perf_counter() - start)
            raise
        except Exception as err:  # noqa: BLE001 - a bug: a 500 with an id to find it in the log, nothing more
            error = internal_error(log, f"{ex.protocol} inference on endpoint {ex.endpoint[:80]!r}")
            self.metrics.failed(ep.name if ep else "", variant, ex.protocol, error, time.perf_counter() - start)
            raise FerryError(error) from err
        self.metrics.succeeded(ep.name, variant, ex.protocol, time.perf_counter() - start, result)
        if ep.capture is not None and ep.capture.sampled():
            ep.capture.put(ex, result)
        for shadow in ep.shadows:
            shadow.offer(payload, ex.output_names, result, ex)
        return result
