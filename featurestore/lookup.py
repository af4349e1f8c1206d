"""The lookup step of an inference pipeline: record ids in, the model's feature matrix (float32) out."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from featurestore.metrics import READ_LATENCY
from featurestore.records import RecordError
from featurestore.spec import FeatureGroupSpec, FeatureType
from featurestore.store import FeatureStore


class UnknownRecordsError(RecordError):
    """Some requested ids have no live online record (missing, deleted or expired)."""

    def __init__(self, group: str, missing: list[str]):
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        super().__init__("record_ids", f"no online record in feature group {group!r} for ids: {shown}")
        self.missing = missing


def numeric_features(spec: FeatureGroupSpec) -> list[str]:
    """The group's numeric scalar features but its record identifier and event time, in the group's order."""
    return [f.name for f in spec.features if f.type is not FeatureType.STRING and f.collection is None
            and f.name not in (spec.record_identifier, spec.event_time)]


def check_features(spec: FeatureGroupSpec, features: Sequence[str]) -> None:
    """Raise RecordError unless the group has an online store and each feature is one of its numeric scalars."""
    if not spec.online_store.enabled:
        raise RecordError("group", f"feature group {spec.name!r} has no online store")
    for f in features:
        if f not in spec.feature_names:
            raise RecordError("features", f"unknown feature {f!r} in group {spec.name!r}")
        fd = spec.feature(f)
        if fd.type is FeatureType.STRING or fd.collection is not None:
            raise RecordError("features", f"feature {f!r} is {fd.type.value}"
                              f"{' ' + fd.collection.value if fd.collection else ''}: not a numeric scalar")


class FeatureLookup:
    """Fetches `features` of `group` for a batch of record ids, in exactly that column order.

    `on_missing="error"` raises UnknownRecordsError naming the unknown ids; "nan" leaves their rows NaN.
    """

    def __init__(self, store: FeatureStore, group: str, features: Sequence[str], on_missing: str = "error"):
        spec = store.group(group)
        check_features(spec, features)
        if on_missing not in ("error", "nan"):
            raise ValueError("on_missing must be 'error' or 'nan'")
        self.store, self.spec, self.features, self.on_missing = store, spec, list(features), on_missing

    def __call__(self, record_ids: Sequence[Any]) -> np.ndarray:
        ids = [str(r) for r in record_ids]
        start = time.perf_counter()
        matrix, found = self.store.online.get_matrix(self.spec, ids, self.features, time.time())
        READ_LATENCY.labels(self.spec.name, "lookup").observe(time.perf_counter() - start)
        if self.on_missing == "error" and not found.all():
            raise UnknownRecordsError(self.spec.name, [ids[i] for i in np.flatnonzero(~found)])
        return matrix.astype(np.float32, copy=False)
