"""Python client of the feature-store REST API (SageMaker featurestore-runtime shapes)."""

from __future__ import annotations

from typing import Any, Sequence

import httpx


class FeatureStoreError(RuntimeError):
    """An error answer: `status` (HTTP), `kind` (SageMaker __type) and the server's message."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(f"{status} {kind}: {message}")
        self.status, self.kind, self.message = status, kind, message


def record(values: dict[str, Any]) -> list[dict[str, Any]]:
    """{feature: value} -> SageMaker Record list (lists become ValueAsStringList)."""
    return [{"FeatureName": k, "ValueAsStringList": [str(x) for x in v]} if isinstance(v, (list, tuple))
            else {"FeatureName": k, "ValueAsString": str(v)} for k, v in values.items() if v is not None]


def values(rec: list[dict[str, Any]]) -> dict[str, Any]:
    """SageMaker Record list -> {feature: string or list of strings}."""
    return {fv["FeatureName"]: fv.get("ValueAsString", fv.get("ValueAsStringList")) for fv in rec}


class FeatureStoreClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8070", timeout: float = 10.0,
                 client: httpx.Client | None = None):
        self.http = client or httpx.Client(base_url=base_url, timeout=timeout)

    def _call(self, method: str, url: str, **kw) -> Any:
        resp = self.http.request(method, url, **kw)
        if resp.status_code >= 400:
            try:
                body = resp.json()
                raise FeatureStoreError(resp.status_code, body.get("__type", "Error"), body.get("message", resp.text))
            except ValueError:
                raise FeatureStoreError(resp.status_code, "Error", resp.text) from None
        return resp.json()

    def create_feature_group(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/feature-groups", json=spec)

    def describe_feature_group(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/feature-groups/{name}")

    def delete_feature_group(self, name: str) -> None:
        self._call("DELETE", f"/feature-groups/{name}")

    def put_record(self, group: str, rec: dict[str, Any] | list[dict[str, Any]],
                   target_stores: Sequence[str] | None = None, ttl: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"Record": record(rec) if isinstance(rec, dict) else rec}
        if target_stores:
            body["TargetStores"] = list(target_stores)
        if ttl:
            body["TtlDuration"] = ttl
        self._call("PUT", f"/FeatureGroup/{group}", json=body)

    def get_record(self, group: str, record_id: Any, feature_names: Sequence[str] | None = None,
                   expiration: bool = False) -> dict[str, Any]:
        params: list[tuple[str, str]] = [("RecordIdentifierValueAsString", str(record_id))]
        params += [("FeatureName", n) for n in feature_names or ()]
        if expiration:
            params.append(("ExpirationTimeResponse", "Enabled"))
        return self._call("GET", f"/FeatureGroup/{group}", params=params)

    def update_record(self, group: str, record_id: Any, features: dict[str, Any],
                      target_stores: Sequence[str] | None = None, ttl: dict[str, Any] | None = None) -> None:
        body: dict[str, Any] = {"RecordIdentifierValueAsString": str(record_id), "Features": record(features)}
        if target_stores:
            body["TargetStores"] = list(target_stores)
        if ttl:
            body["TtlDuration"] = ttl
        self._call("POST", f"/FeatureGroup/{group}/Record", json=body)

    def delete_record(self, group: str, record_id: Any, event_time: Any, hard: bool = False,
                      target_stores: Sequence[str] | None = None) -> None:
        params: list[tuple[str, str]] = [("RecordIdentifierValueAsString", str(record_id)),
                                         ("EventTime", str(event_time)),
                                         ("DeletionMode", "HardDelete" if hard else "SoftDelete")]
        params += [("TargetStores", t) for t in target_stores or ()]
        self._call("DELETE", f"/FeatureGroup/{group}", params=params)

    def batch_get_record(self, identifiers: list[dict[str, Any]], expiration: bool = False) -> dict[str, Any]:
        return self._call("POST", "/BatchGetRecord", json={
            "Identifiers": identifiers, "ExpirationTimeResponse": "Enabled" if expiration else "Disabled"})

    def get_online_features(self, features: list[str], entities: dict[str, list[Any]]) -> dict[str, Any]:
        return self._call("POST", "/get-online-features", json={"features": features, "entities": entities})

    def close(self) -> None:
        self.http.close()
