"""The deploy-file schema (`ferry.yaml`): one pydantic model, env overrides, clear errors.

Every section is a typed model with defaults; unknown keys are errors. Environment variables
``FERRY_<SECTION>__<FIELD>[__<INDEX>...]`` override the file (``FERRY_SERVER__HTTP_PORT=9000``),
values parsed as YAML scalars so numbers and booleans keep their types - except secrets (fields named
``*token``, ``*secret*``, ``*password*``), taken literally: ``s3cr3t #prod`` stays that, ``null`` is a token.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import Field, ValidationError, model_validator

from core.schema import Strict
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec
from monitor.spec import MonitoringScheduleSpec
from serving.spec import EndpointSpec, ModelSpec, ServerSpec

ENV_PREFIX = "FERRY_"
SECRET_WORDS = ("token", "secret", "password")  # a field named with one is a secret (token files excepted)


def is_secret(field: str) -> bool:
    """Whether an env override of this field is taken literally (a secret is never parsed as YAML)."""
    return any(w in field for w in SECRET_WORDS) and not field.endswith("_file")


class KafkaSpec(Strict):
    """Apache Kafka used by capture sinks, asynchronous endpoints and feature ingestion (PLAINTEXT: Ferry's Kafka
    clients take no TLS or SASL settings)."""

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port]")


class RedisSpec(Strict):
    """Redis used as the online feature store."""

    url: str = Field("redis://127.0.0.1:6379/0", description="redis:// URL")


class DeployFile(Strict):
    """The whole ferry.yaml."""

    server: ServerSpec = Field(default_factory=ServerSpec)
    models: list[ModelSpec] = Field(default_factory=list)
    endpoints: list[EndpointSpec] = Field(default_factory=list)
    kafka: KafkaSpec | None = None
    redis: RedisSpec | None = None
    feature_groups: list[FeatureGroupSpec] = Field(default_factory=list)
    monitoring_schedules: list[MonitoringScheduleSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> "DeployFile":
        names = [m.name for m in self.models]
        _unique(names, "models")
        _unique([e.name for e in self.endpoints], "endpoints")
        _unique([g.name for g in self.feature_groups], "feature_groups")
        _unique([s.name for s in self.monitoring_schedules], "monitoring_schedules")
        known = set(names)
        for i, ep in enumerate(self.endpoints):
            for kind, variants in (("variants", ep.variants), ("shadow_variants", ep.shadow_variants)):
                for j, v in enumerate(variants):
                    if v.model is not None and v.model not in known:
                        raise ValueError(
                            f"endpoints.{i}.{kind}.{j}.model: unknown model {v.model!r} "
                            f"(declared models: {sorted(known) or 'none'})"
                        )
        self._pipeline_references(known)
        for i, ep in enumerate(self.endpoints):
            note = ep.async_inference and ep.async_inference.notification
            if note and (note.success_topic or note.error_topic) and self.kafka is None:
                raise ValueError(f"endpoints.{i}.async.notification: success_topic and error_topic are Kafka "
                                 "topics: the deploy file needs a kafka section (bootstrap_servers)")
            if ep.async_inference and ep.async_inference.queue == "kafka" and self.kafka is None:
                raise ValueError(f"endpoints.{i}.async.queue: kafka needs the deploy file's kafka section "
                                 "(bootstrap_servers)")
        return self

    def _pipeline_references(self, models: set[str]) -> None:
        """Pipeline steps name declared models, and feature groups whose numeric features they fetch."""
        groups = {g.name: g for g in self.feature_groups}
        for i, ep in enumerate(self.endpoints):
            for j, v in enumerate(ep.variants):
                for k, step in enumerate(v.pipeline or ()):
                    at = f"endpoints.{i}.variants.{j}.pipeline.{k}"
                    if step.model is not None and step.model not in models:
                        raise ValueError(f"{at}.model: unknown model {step.model!r} "
                                         f"(declared models: {sorted(models) or 'none'})")
                    if step.feature_lookup is None:
                        continue
                    group = groups.get(step.feature_lookup.feature_group)
                    if group is None:
                        raise ValueError(f"{at}.feature_lookup.feature_group: unknown feature group "
                                         f"{step.feature_lookup.feature_group!r} (declared: {sorted(groups) or 'none'})")
                    from serving.steps import lookup_columns

                    try:
                        lookup_columns(step.feature_lookup, group)
                    except ValueError as err:
                        raise ValueError(f"{at}.feature_lookup.{err}") from None

    def feature_store_settings(self, base: Path) -> FeatureStoreSettings:
        """The feature store's settings: SQLite + Parquet under <ferry.yaml dir>/.ferry/features by default,
        Redis online when the file has a `redis` section, Kafka from `kafka`."""
        upd: dict[str, Any] = {"data_dir": str(base / FeatureStoreSettings().data_dir)}
        if self.redis is not None:
            upd["online"] = {"type": "redis", "url": self.redis.url}
        if self.kafka is not None:
            upd["kafka_bootstrap_servers"] = self.kafka.bootstrap_servers
        return FeatureStoreSettings(**upd)

    def resolve_paths(self, base: Path, environ: Mapping[str, str] | None = None) -> "DeployFile":
        """Make relative model paths and capture folders relative to the deploy file's folder; read the secrets
        given as files (or, for SigV4 keys, as environment variables of `environ`)."""
        for m in self.models:
            m.path = m.resolved_path(base)
        self.server.read_token_files(base, environ)
        for ep in self.endpoints:
            if ep.data_capture.sink.type == "file":  # a folder, also when written file://<folder>
                ep.data_capture.destination = _local(base, ep.data_capture.sink.folder)
            for v in ep.variants:
                for step in v.pipeline or ():
                    if step.python:  # only a python step has a path (set on another, it would not validate again)
                        step.path = _local(base, step.path)
            if ep.async_inference is not None:
                a = ep.async_inference
                a.output_path, a.queue_path = _local(base, a.output_path), _local(base, a.queue_path)
                a.failure_path = _local(base, a.failure_path or a.output_path)
                a.input_prefixes = [_local(base, p) for p in a.input_prefixes]
        self.server.ground_truth_dir = _local(base, self.server.ground_truth_dir)
        self.server.state_dir = _local(base, self.server.state_dir)
        for s in self.monitoring_schedules:
            for field in s.path_fields:
                if getattr(s, field):
                    setattr(s, field, _local(base, getattr(s, field)))
        return self


def _local(base: Path, path: str) -> str:
    """A path relative to the deploy file's folder (URIs such as kafka:// or s3:// stay as they are)."""
    if "://" in path or Path(path).is_absolute():
        return path
    return str((base / path).resolve())


def _unique(names: list[str], where: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{where}: duplicate name {n!r}")
        seen.add(n)


class ConfigError(ValueError):
    """A deploy file that cannot be used; the message names the field and the reason."""


def override_vars(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The FERRY_<SECTION>__... variables of `environ` (default: this process's) that override the file."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items()
            if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):].lower().split("__")[0] in DeployFile.model_fields}


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Overlay FERRY_A__B__0__C=value variables onto the parsed file (returns a new dict)."""
    overrides = override_vars(environ)
    out = copy.deepcopy(data)
    for key in sorted(overrides):
        path = key[len(ENV_PREFIX):].lower().split("__")
        raw = overrides[key]
        try:
            value = raw if raw == "" or is_secret(path[-1]) else yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"{key}: not a YAML value (quote a string)") from None
        _set_path(out, path, value)
    return out


def _set_path(node: Any, path: list[str], value: Any) -> None:
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{'.'.join(path)}: index {part!r} is not in the list (length {len(node)})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(path)}: {'.'.join(path[:i]) or 'the file'} is not a mapping")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = [] if path[i + 1].isdigit() else {}
            node = node[part]


def format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(file)"
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}")
    return "invalid deploy file:\n  " + "\n  ".join(lines)


def parse_config(data: dict[str, Any] | None, base: Path | None = None,
                 environ: Mapping[str, str] | None = None) -> DeployFile:
    """Validate a parsed deploy file (after env overrides); raise ConfigError naming the field."""
    merged = apply_env_overrides(data or {}, environ)
    try:
        cfg = DeployFile.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err)) from None
    try:
        return cfg.resolve_paths(base or Path.cwd(), environ)
    except ValueError as err:  # a token file that cannot be read
        raise ConfigError(str(err)) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> DeployFile:
    """Read, override from the environment, and validate ferry.yaml."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"deploy file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of sections")
    return parse_config(data, base=p.parent.resolve(), environ=environ)
