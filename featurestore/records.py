"""Record validation: raw values (JSON-native or SageMaker ValueAsString) -> typed values; errors name the field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from featurestore.spec import CollectionType, FeatureDefinition, FeatureGroupSpec, FeatureType

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_VALUE_CHARS = 358_400
MIN_EVENT_TIME = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
MAX_EVENT_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp()


class RecordError(ValueError):
    """A record that does not fit its group; `field` names the offending feature."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFoundError(LookupError):
    """A feature group (or record) that does not exist."""


class ConflictError(ValueError):
    """UpdateRecord with an event time older than the stored one."""


@dataclass(slots=True)
class Record:
    """A validated record: id as string, event time as unix seconds, typed feature values."""

    record_id: str
    event_time: float
    values: dict[str, Any]
    expires_at: float | None = None


def parse_event_time(value: Any, ftype: FeatureType, name: str) -> float:
    """ISO-8601 string (String feature) or unix seconds (Fractional) -> unix seconds."""
    if ftype is FeatureType.STRING:
        if not isinstance(value, str):
            raise RecordError(name, f"event time must be an ISO-8601 string, got {type(value).__name__}")
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(name, f"event time {value!r} is not ISO-8601 (yyyy-MM-ddTHH:mm:ss[.SSS]Z)") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    t = _fractional(value, name)
    if not (MIN_EVENT_TIME <= t <= MAX_EVENT_TIME) or math.isnan(t):
        raise RecordError(name, f"event time {value!r} is outside 0001-01-01..9999-12-31")
    return t


def _integral(v: Any, name: str) -> int:
    if isinstance(v, bool):
        raise RecordError(name, "expected Integral, got a boolean")
    if isinstance(v, int):
        out = v
    elif isinstance(v, str):
        try:
            out = int(v.strip())
        except ValueError:
            raise RecordError(name, f"expected Integral, got {v[:40]!r}") from None
    elif isinstance(v, float) and v.is_integer():
        out = int(v)
    else:
        raise RecordError(name, f"expected Integral, got {type(v).__name__} {str(v)[:40]}")
    if not INT64_MIN <= out <= INT64_MAX:
        raise RecordError(name, f"Integral {out} is outside the signed 64-bit range")
    return out


def _fractional(v: Any, name: str) -> float:
    if isinstance(v, bool):
        raise RecordError(name, "expected Fractional, got a boolean")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise RecordError(name, f"expected Fractional, got {v[:40]!r}") from None
    raise RecordError(name, f"expected Fractional, got {type(v).__name__}")


def _string(v: Any, name: str) -> str:
    if not isinstance(v, str):
        raise RecordError(name, f"expected String, got {type(v).__name__}")
    if len(v) > MAX_VALUE_CHARS:
        raise RecordError(name, f"String longer than {MAX_VALUE_CHARS} characters")
    return v


_SCALAR: dict[FeatureType, Callable[[Any, str], Any]] = {
    FeatureType.INTEGRAL: _integral, FeatureType.FRACTIONAL: _fractional, FeatureType.STRING: _string,
}


def converter(fd: FeatureDefinition) -> Callable[[Any], Any]:
    """A function that validates and converts one raw value of this feature (None stays None)."""
    scalar = _SCALAR[fd.type]
    name = fd.name
    if fd.collection is None:
        if fd.type is FeatureType.INTEGRAL:
            return lambda v: v if type(v) is int and INT64_MIN <= v <= INT64_MAX else (
                None if v is None else scalar(v, name))
        if fd.type is FeatureType.STRING:
            return lambda v: v if type(v) is str and len(v) <= MAX_VALUE_CHARS else (
                None if v is None else scalar(v, name))
        return lambda v: v if type(v) is float else (None if v is None else scalar(v, name))

    def collection(v: Any) -> Any:
        if v is None:
            return None
        if not isinstance(v, (list, tuple)):
            raise RecordError(name, f"expected a {fd.collection.value} of {fd.type.value}, got {type(v).__name__}")
        out = [scalar(x, name) for x in v]
        if fd.collection is CollectionType.SET and len(set(out)) != len(out):
            raise RecordError(name, "a Set must not hold duplicate values")
        if fd.collection is CollectionType.VECTOR and len(out) != fd.dimension:
            raise RecordError(name, f"Vector must have {fd.dimension} elements, got {len(out)}")
        return out

    return collection


class RecordParser:
    """Validates records of one feature group; built once per group, reused per record."""

    def __init__(self, spec: FeatureGroupSpec):
        self.spec = spec
        self.convert = {f.name: converter(f) for f in spec.features}
        self.rid_name = spec.record_identifier
        self.et_name = spec.event_time
        self.et_type = spec.feature(spec.event_time).type

    def parse(self, raw: dict[str, Any], partial: bool = False) -> Record:
        """Validate a {feature: value} mapping. `partial` (UpdateRecord) allows missing features and event time."""
        if not isinstance(raw, dict):
            raise RecordError("Record", f"expected an object of feature values, got {type(raw).__name__}")
        values: dict[str, Any] = {}
        convert = self.convert
        for k, v in raw.items():
            fn = convert.get(k)
            if fn is None:
                raise RecordError(str(k), f"unknown feature for group {self.spec.name!r}")
            values[k] = fn(v)
        rid = values.get(self.rid_name)
        if rid is None or rid == "":
            raise RecordError(self.rid_name, "record identifier is required")
        et_raw = raw.get(self.et_name)
        if et_raw is None:
            if not partial:
                raise RecordError(self.et_name, "event time is required")
            et = math.nan
        else:
            et = parse_event_time(et_raw, self.et_type, self.et_name)
        if len(str(rid)) > 2048:
            raise RecordError(self.rid_name, "record identifier longer than 2 KB")
        return Record(str(rid), et, values)

    def parse_sagemaker(self, record: list[dict[str, Any]], partial: bool = False) -> Record:
        """Validate a SageMaker `Record: [{FeatureName, ValueAsString | ValueAsStringList}]` list."""
        if not isinstance(record, list):
            raise RecordError("Record", "expected a list of {FeatureName, ValueAsString} objects")
        raw: dict[str, Any] = {}
        for i, fv in enumerate(record):
            if not isinstance(fv, dict) or "FeatureName" not in fv:
                raise RecordError(f"Record.{i}", "expected {FeatureName, ValueAsString | ValueAsStringList}")
            name = fv["FeatureName"]
            if not isinstance(name, str):
                raise RecordError(f"Record.{i}.FeatureName", f"expected a string, got {type(name).__name__}")
            if name in raw:
                raise RecordError(str(name), "feature given twice")
            if "ValueAsStringList" in fv:
                raw[name] = fv["ValueAsStringList"]
            elif "ValueAsString" in fv:
                raw[name] = fv["ValueAsString"]
            else:
                raise RecordError(str(name), "needs ValueAsString or ValueAsStringList")
        return self.parse(raw, partial=partial)


def as_text(v: Any) -> str | list[str]:
    """A typed value as SageMaker carries it: ValueAsString text, or a ValueAsStringList for a collection."""
    if isinstance(v, list):
        return [_as_string(x) for x in v]
    return _as_string(v)


def to_sagemaker(text: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    """Text values (see as_text) -> SageMaker Record list in `names` order (None values are left out, as SageMaker
    does)."""
    out = []
    for n in names:
        v = text.get(n)
        if v is None:
            continue
        out.append({"FeatureName": n, "ValueAsStringList": v} if isinstance(v, list)
                   else {"FeatureName": n, "ValueAsString": v})
    return out


def _as_string(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)
