"""The FeatureStore: feature-group registry plus SageMaker featurestore-runtime operations over the two stores."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from pydantic import ValidationError

from core.errors import quote
from core.jsonio import read_json, write_text_atomic
from featurestore.metrics import READ_LATENCY
from featurestore.offline import OfflineStore
from featurestore.online import OnlineStore, StoreUnavailable, open_online_store
from featurestore.online.base import KEEP
from featurestore.records import NotFoundError, Record, RecordError, RecordParser, parse_event_time, to_sagemaker
from featurestore.settings import FeatureStoreSettings
from featurestore.spec import FeatureGroupSpec, FeatureType, TtlDuration

log = logging.getLogger(__name__)

ONLINE, OFFLINE = "OnlineStore", "OfflineStore"
MAX_BATCH_IDENTIFIERS = 10_000  # per BatchGetRecord call; the rest come back in UnprocessedIdentifiers


class FeatureStore:
    """Groups from the deploy file plus those created over the API (kept in `<data_dir>/registry.json`)."""

    def __init__(self, settings: FeatureStoreSettings | None = None, groups: Iterable[FeatureGroupSpec] = (),
                 online: OnlineStore | None = None):
        self.settings = settings or FeatureStoreSettings()
        self.data_dir = Path(self.settings.data_dir)
        self.online = online or open_online_store(self.settings.online, self.data_dir)
        self._groups: dict[str, FeatureGroupSpec] = {}
        self._parsers: dict[str, RecordParser] = {}
        self._lock = threading.Lock()
        for spec in self._load_registry():
            self._register(spec)
        for spec in groups:
            self._register(spec)

    # ---- registry
    @property
    def registry_path(self) -> Path:
        return self.data_dir / "registry.json"

    def _load_registry(self) -> list[FeatureGroupSpec]:
        if not self.registry_path.is_file():
            return []
        return [FeatureGroupSpec.model_validate(g) for g in read_json(self.registry_path)]

    def _save_registry(self, created: list[FeatureGroupSpec]) -> None:
        write_text_atomic(self.registry_path, json.dumps([g.model_dump(mode="json", exclude_none=True)
                                                          for g in created], indent=1))

    def _register(self, spec: FeatureGroupSpec) -> None:
        self._groups[spec.name] = spec
        self._parsers[spec.name] = RecordParser(spec)
        if spec.online_store.enabled:
            self.online.create_group(spec)

    def create_group(self, spec: FeatureGroupSpec | dict[str, Any]) -> FeatureGroupSpec:
        """CreateFeatureGroup: persist a new group; a group of that name must not exist."""
        if isinstance(spec, dict):
            spec = FeatureGroupSpec.model_validate(spec)
        if spec.offline_store.path is not None:
            spec = spec.model_copy(update={"offline_store": spec.offline_store.model_copy(
                update={"path": str(self._confined(spec.offline_store.path))})})
        with self._lock:
            if spec.name in self._groups:
                raise RecordError("name", f"feature group {spec.name!r} already exists")
            created = self._load_registry() + [spec]
            self._save_registry(created)
            self._register(spec)
        return spec

    def _confined(self, path: str) -> Path:
        """A created group's offline path: relative to data_dir, and never outside it (links followed)."""
        root = self.data_dir.resolve()
        resolved = (root / path).resolve()
        if not resolved.is_relative_to(root):
            raise RecordError("offline_store.path", f"must be inside the feature store's data folder {root} "
                              f"(got {path[:200]!r})")
        return resolved

    def delete_group(self, name: str) -> None:
        """DeleteFeatureGroup: drop its online records and forget it (the offline log stays)."""
        spec = self.group(name)
        with self._lock:
            self._save_registry([g for g in self._load_registry() if g.name != name])
            if spec.online_store.enabled:
                self.online.drop_group(spec)
            del self._groups[name], self._parsers[name]

    def group(self, name: str) -> FeatureGroupSpec:
        spec = self._groups.get(name)
        if spec is None:
            raise NotFoundError(f"feature group {quote(name)} not found")
        return spec

    def groups(self) -> list[FeatureGroupSpec]:
        return list(self._groups.values())

    def parser(self, name: str) -> RecordParser:
        self.group(name)
        return self._parsers[name]

    def offline(self, spec: FeatureGroupSpec) -> OfflineStore:
        return OfflineStore(spec.offline_store.path or self.data_dir / "offline")

    # ---- writes
    def _expiry(self, spec: FeatureGroupSpec, event_time: float, ttl: TtlDuration | None) -> float | None:
        ttl = ttl or spec.online_store.ttl
        return None if ttl is None else event_time + ttl.seconds()

    def write_batch(self, spec: FeatureGroupSpec, records: Sequence[Record], targets: Sequence[str] = (ONLINE, OFFLINE),
                    ttl: TtlDuration | None = None) -> int:
        """Put validated records: online under the event-time rule, offline always (append). Returns online applied."""
        return self.write_parts(spec, [(None, records)], targets, ttl)

    def write_parts(self, spec: FeatureGroupSpec, parts: Sequence[tuple[str | None, Sequence[Record]]],
                    targets: Sequence[str] = (ONLINE, OFFLINE), ttl: TtlDuration | None = None) -> int:
        """Records in parts (e.g. a Kafka micro-batch, a part per partition): all of them online in order, then
        each part appended offline under its tag (None: a random one). Returns how many were applied online."""
        now = time.time()
        records = [r for _, recs in parts for r in recs]
        for r in records:
            r.expires_at = self._expiry(spec, r.event_time, ttl)
        applied = 0
        if ONLINE in targets and spec.online_store.enabled:
            applied = self.online.put_many(spec, records, now)
        if OFFLINE in targets and spec.offline_store.enabled:
            offline = self.offline(spec)
            for tag, recs in parts:
                offline.append(spec, recs, api_invocation_time=now, tag=tag)
        return applied

    def remove_uncommitted(self, spec: FeatureGroupSpec, topic: str, committed: dict[int, int]) -> int:
        """Offline files of `topic` written at or past the committed offsets (a crashed run's): removed."""
        if not spec.offline_store.enabled:
            return 0
        return self.offline(spec).remove_uncommitted(spec, topic, committed)

    def ping(self) -> None:
        """Raise when the online store cannot be reached."""
        self.online.ping()

    def put_record(self, name: str, record: list[dict[str, Any]] | dict[str, Any],
                   target_stores: Sequence[str] | None = None, ttl: TtlDuration | dict | None = None) -> bool:
        """PutRecord (SageMaker Record list or {feature: value}); True when the online record changed."""
        spec = self.group(name)
        parser = self._parsers[name]
        rec = parser.parse_sagemaker(record) if isinstance(record, list) else parser.parse(record)
        targets = _targets(target_stores)
        return self.write_batch(spec, [rec], targets, _ttl(ttl)) == 1

    def update_record(self, name: str, record_id: str, features: list[dict[str, Any]] | dict[str, Any],
                      target_stores: Sequence[str] | None = None, ttl: TtlDuration | dict | None = None) -> None:
        """UpdateRecord: merge the listed features; older EventTime -> ConflictError; none keeps the stored one."""
        spec = self.group(name)
        parser = self._parsers[name]
        raw = features if isinstance(features, dict) else _sagemaker_to_raw(features)
        raw = {**raw, spec.record_identifier: raw.get(spec.record_identifier, record_id)}
        rec = parser.parse(raw, partial=True)
        if rec.record_id != str(record_id):
            raise RecordError(spec.record_identifier, "does not match RecordIdentifierValueAsString")
        ttl = _ttl(ttl)
        if ttl is not None and math.isnan(rec.event_time):
            raise RecordError("TtlDuration", "a TtlDuration needs the EventTime feature")
        if math.isnan(rec.event_time):
            exp = KEEP
        else:
            exp = self._expiry(spec, rec.event_time, ttl)
        targets = _targets(target_stores)
        now = time.time()
        if ONLINE in targets and spec.online_store.enabled:
            self.online.update(spec, rec, exp, now)
        if OFFLINE in targets and spec.offline_store.enabled and not math.isnan(rec.event_time):
            self.offline(spec).append(spec, [rec], api_invocation_time=now)

    def delete_record(self, name: str, record_id: str, event_time: Any, target_stores: Sequence[str] | None = None,
                      deletion_mode: str = "SoftDelete") -> bool:
        """DeleteRecord with the event-time rule; writes an offline marker (not for a rejected HardDelete)."""
        spec = self.group(name)
        if deletion_mode not in ("SoftDelete", "HardDelete"):
            raise RecordError("DeletionMode", f"must be SoftDelete or HardDelete, got {deletion_mode!r}")
        if event_time is None or event_time == "":
            raise RecordError("EventTime", "is required")
        et_fd = spec.feature(spec.event_time)
        et = parse_event_time(event_time, et_fd.type, "EventTime")
        rid_value = self._parsers[name].convert[spec.record_identifier](record_id)
        targets = _targets(target_stores)
        now = time.time()
        applied = False
        if ONLINE in targets and spec.online_store.enabled:
            applied = self.online.delete(spec, str(record_id), et, deletion_mode == "HardDelete", now)
        if OFFLINE in targets and spec.offline_store.enabled:
            marker = Record(str(record_id), et, {spec.record_identifier: rid_value, spec.event_time: event_time
                                                 if et_fd.type is FeatureType.STRING else et})
            self.offline(spec).append(spec, [marker], deleted=[True], api_invocation_time=now)
        return applied

    # ---- reads
    def get_records(self, name: str, record_ids: Sequence[str], feature_names: Sequence[str] | None = None,
                    text: bool = False):
        """Live stored records (None for missing/deleted/expired) in the order asked; with `text` their values
        are SageMaker text (records.as_text) rather than typed."""
        spec = self.group(name)
        if not spec.online_store.enabled:
            raise RecordError("FeatureGroupName", f"feature group {name!r} has no online store")
        if feature_names:
            wrong = [n for n in feature_names if not isinstance(n, str)]
            if wrong:
                raise RecordError("FeatureNames", f"expected a list of feature names (strings), got "
                                  f"{type(wrong[0]).__name__} {str(wrong[0])[:40]}")
            unknown = [n for n in feature_names if n not in self._parsers[name].convert]
            if unknown:
                raise RecordError("FeatureNames", f"unknown features {unknown} in group {name!r}")
        read = self.online.get_text if text else self.online.get_many
        start = time.perf_counter()
        got = read(spec, [str(r) for r in record_ids], time.time(), list(feature_names) if feature_names else None)
        READ_LATENCY.labels(name, "get").observe(time.perf_counter() - start)
        return got

    def get_record(self, name: str, record_id: str, feature_names: Sequence[str] | None = None,
                   expiration: bool = False) -> dict[str, Any]:
        """GetRecord response body: {} for an unknown, deleted or expired id (not an error)."""
        spec = self.group(name)
        got = self.get_records(name, [record_id], feature_names, text=True)[0]
        if got is None:
            return {}
        out: dict[str, Any] = {"Record": to_sagemaker(got.values, list(feature_names or spec.feature_names))}
        if expiration and got.expires_at is not None:  # as SageMaker: only records with a TTL have one
            out["ExpiresAt"] = _iso(got.expires_at)
        return out

    def batch_get_record(self, identifiers: list[dict[str, Any]], expiration: bool = False) -> dict[str, Any]:
        """BatchGetRecord across groups: Records, Errors per id, UnprocessedIdentifiers beyond the cap."""
        records: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        unprocessed: list[dict[str, Any]] = []
        budget = MAX_BATCH_IDENTIFIERS
        for ident in identifiers:
            name = ident.get("FeatureGroupName")
            ids = [str(x) for x in ident.get("RecordIdentifiersValueAsString") or []]
            names = ident.get("FeatureNames") or None
            take, rest = ids[:budget], ids[budget:]
            budget -= len(take)
            if rest:
                unprocessed.append({**ident, "RecordIdentifiersValueAsString": rest})
            if not take:
                continue
            try:
                spec = self.group(name)
                got = self.get_records(name, take, names, text=True)
            except NotFoundError as e:
                errors += [_err(name, r, "ResourceNotFound", str(e)) for r in take]
                continue
            except RecordError as e:
                errors += [_err(name, r, "ValidationError", str(e)) for r in take]
                continue
            except StoreUnavailable as e:  # the caller retries these, nothing is dropped
                log.warning("BatchGetRecord %s: %s", name, e)
                unprocessed.append({**ident, "RecordIdentifiersValueAsString": take})
                continue
            order = list(names or spec.feature_names)
            for rid, g in zip(take, got):
                if g is None:
                    continue
                item = {"FeatureGroupName": name, "RecordIdentifierValueAsString": rid,
                        "Record": to_sagemaker(g.values, order)}
                if expiration and g.expires_at is not None:
                    item["ExpiresAt"] = _iso(g.expires_at)
                records.append(item)
        return {"Records": records, "Errors": errors, "UnprocessedIdentifiers": unprocessed}

    def close(self) -> None:
        self.online.close()


def _err(name: Any, rid: str, code: str, msg: str) -> dict[str, Any]:
    return {"FeatureGroupName": name, "RecordIdentifierValueAsString": rid, "ErrorCode": code, "ErrorMessage": msg}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _targets(target_stores: Sequence[str] | None) -> tuple[str, ...]:
    if not target_stores:
        return (ONLINE, OFFLINE)
    bad = [t for t in target_stores if t not in (ONLINE, OFFLINE)]
    if bad:
        raise RecordError("TargetStores", f"unknown stores {bad} (OnlineStore, OfflineStore)")
    return tuple(target_stores)


def _ttl(ttl: TtlDuration | dict | None) -> TtlDuration | None:
    if ttl is None or isinstance(ttl, TtlDuration):
        return ttl
    try:
        return TtlDuration.model_validate(ttl)
    except ValidationError as e:
        raise RecordError("TtlDuration", str(e.errors()[0]["msg"])) from None


def _sagemaker_to_raw(features: list[dict[str, Any]]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for i, fv in enumerate(features):
        if not isinstance(fv, dict) or "FeatureName" not in fv:
            raise RecordError(f"Features.{i}", "expected {FeatureName, ValueAsString | ValueAsStringList}")
        if not isinstance(fv["FeatureName"], str):
            raise RecordError(f"Features.{i}.FeatureName", f"expected a string, got {type(fv['FeatureName']).__name__}")
        raw[fv["FeatureName"]] = fv.get("ValueAsStringList", fv.get("ValueAsString"))
    return raw
