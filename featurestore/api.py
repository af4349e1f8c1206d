"""REST API: SageMaker featurestore-runtime routes, Feast-style /get-online-features, feature-group admin.

`make_router(store)` is an APIRouter the Ferry server mounts; `create_app(store)` serves it alone
(`ferry features serve`). Errors use SageMaker's shape `{"__type": ..., "message": ...}`:
ValidationError 400 (the message names the field), ResourceNotFound 404, ConflictException 409,
ServiceUnavailable 503 when a backend is down. Bodies are parsed by hand so a malformed request is always a 400.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from functools import wraps
from typing import Any, Callable

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError

from core.errors import MAX_MESSAGE
from featurestore.guard import Guard
from featurestore.online import StoreUnavailable
from featurestore.records import ConflictError, NotFoundError, RecordError
from featurestore.store import FeatureStore

log = logging.getLogger(__name__)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(kind: str, message: str, status: int) -> Response:
    """SageMaker's error shape; the message (which may quote the client's input) is bounded."""
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 3] + "..."
    return _json({"__type": kind, "message": message}, status)


def _errors_as_responses(fn: Callable) -> Callable:
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NotFoundError as e:
            return _error("ResourceNotFound", str(e), 404)
        except ConflictError as e:
            return _error("ConflictException", str(e), 409)
        except RecordError as e:
            return _error("ValidationError", str(e), 400)
        except ValidationError as e:
            msg = "; ".join(f"{'.'.join(str(p) for p in x['loc']) or 'body'}: {x['msg']}" for x in e.errors())
            return _error("ValidationError", msg, 400)
        except StoreUnavailable as e:
            log.warning("%s", e)
            return _error("ServiceUnavailable", str(e), 503)
        except Exception:  # a bug, never the client's input (tests send every wrong type to every field)
            ref = uuid.uuid4().hex[:12]
            log.exception("internal error %s", ref)
            return _error("InternalFailure", f"internal error (reference {ref} in the server log)", 500)

    return wrapper


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as e:
        raise RecordError("body", f"not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise RecordError("body", "expected a JSON object")
    return body


async def _with_body(request: Request, handler: Callable[..., Response], *args: Any) -> Response:
    """Run a route's handler on the request's JSON object body (400 when the body is not one)."""
    try:
        body = await _body(request)
    except RecordError as e:
        return _error("ValidationError", str(e), 400)
    return handler(*args, body)


def _field(body: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    v = body.get(name)
    if v is None:
        if required:
            raise RecordError(name, "is required")
        return None
    if not isinstance(v, kind):
        raise RecordError(name, f"expected {kind.__name__}, got {type(v).__name__}")
    return v


def make_router(store: FeatureStore) -> APIRouter:
    """All feature-store routes over one FeatureStore."""
    r = APIRouter(tags=["featurestore"])

    @r.put("/FeatureGroup/{name}")
    async def put_record(name: str, request: Request) -> Response:
        return await _with_body(request, _put, name)

    @_errors_as_responses
    def _put(name: str, body: dict[str, Any]) -> Response:
        record = _field(body, "Record", list)
        store.put_record(name, record, _field(body, "TargetStores", list, False), body.get("TtlDuration"))
        return _json({})

    @r.get("/FeatureGroup/{name}")
    async def get_record(name: str, request: Request) -> Response:
        # query parameters read directly (no per-request validation machinery); sub-millisecond store reads
        # run on the event loop: no thread hop on the hot path
        q = request.query_params
        return _get(name, q.get("RecordIdentifierValueAsString"), q.getlist("FeatureName") or None,
                    q.get("ExpirationTimeResponse", "Disabled"))

    @_errors_as_responses
    def _get(name: str, record_id: str | None, feature_names: list[str] | None, expiration: str) -> Response:
        if record_id is None:
            raise RecordError("RecordIdentifierValueAsString", "is required")
        return _json(store.get_record(name, record_id, feature_names, _expiration(expiration)))

    @r.delete("/FeatureGroup/{name}")
    @_errors_as_responses
    def delete_record(name: str, RecordIdentifierValueAsString: str | None = None, EventTime: str | None = None,
                      TargetStores: list[str] | None = Query(None), DeletionMode: str = "SoftDelete") -> Response:
        if RecordIdentifierValueAsString is None:
            raise RecordError("RecordIdentifierValueAsString", "is required")
        store.delete_record(name, RecordIdentifierValueAsString, EventTime, TargetStores, DeletionMode)
        return _json({})

    @r.post("/FeatureGroup/{name}/Record")
    async def update_record(name: str, request: Request) -> Response:
        return await _with_body(request, _update, name)

    @_errors_as_responses
    def _update(name: str, body: dict[str, Any]) -> Response:
        rid = body.get("RecordIdentifierValueAsString")
        if rid is None or isinstance(rid, (dict, list)):
            raise RecordError("RecordIdentifierValueAsString", "is required (a string)")
        features = _field(body, "Features", list)
        if len(features) > 100:
            raise RecordError("Features", "at most 100 features per UpdateRecord")
        store.update_record(name, str(rid), features, _field(body, "TargetStores", list, False),
                            body.get("TtlDuration"))
        return _json({})

    @r.post("/BatchGetRecord")
    async def batch_get_record(request: Request) -> Response:
        return await _with_body(request, _batch)

    @_errors_as_responses
    def _batch(body: dict[str, Any]) -> Response:
        idents = _field(body, "Identifiers", list)
        for i, ident in enumerate(idents):
            if not isinstance(ident, dict) or not isinstance(ident.get("FeatureGroupName"), str):
                raise RecordError(f"Identifiers.{i}.FeatureGroupName", "is required (a string)")
            if not isinstance(ident.get("RecordIdentifiersValueAsString"), list):
                raise RecordError(f"Identifiers.{i}.RecordIdentifiersValueAsString", "is required (a list)")
            names = ident.get("FeatureNames")
            if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
                raise RecordError(f"Identifiers.{i}.FeatureNames", "must be a list of feature names (strings)")
        return _json(store.batch_get_record(idents, _expiration(body.get("ExpirationTimeResponse", "Disabled"))))

    @r.post("/get-online-features")
    async def get_online_features(request: Request) -> Response:
        return await _with_body(request, _feast)

    @_errors_as_responses
    def _feast(body: dict[str, Any]) -> Response:
        return _json(online_features(store, _field(body, "features", list), _field(body, "entities", dict)))

    @r.post("/feature-groups")
    async def create_group(request: Request) -> Response:
        return await _with_body(request, _create)

    @_errors_as_responses
    def _create(body: dict[str, Any]) -> Response:
        spec = store.create_group(body)
        return _json(spec.model_dump(mode="json", exclude_none=True), 201)

    @r.get("/feature-groups")
    def list_groups() -> Response:
        return _json({"FeatureGroups": [g.model_dump(mode="json", exclude_none=True) for g in store.groups()]})

    @r.get("/feature-groups/{name}")
    @_errors_as_responses
    def describe_group(name: str) -> Response:
        return _json(store.group(name).model_dump(mode="json", exclude_none=True))

    @r.delete("/feature-groups/{name}")
    @_errors_as_responses
    def delete_group(name: str) -> Response:
        store.delete_group(name)
        return _json({})

    return r


def _expiration(v: Any) -> bool:
    if v not in ("Enabled", "Disabled"):
        raise RecordError("ExpirationTimeResponse", "must be Enabled or Disabled")
    return v == "Enabled"


def online_features(store: FeatureStore, features: list[Any], entities: dict[str, Any]) -> dict[str, Any]:
    """Feast's get-online-features: features as "group:feature", one entity key column -> column-wise results."""
    if len(entities) != 1:
        raise RecordError("entities", "give exactly one entity key column, e.g. {\"applicant_id\": [1, 2]}")
    (key, ids), = entities.items()
    if not isinstance(ids, list):
        raise RecordError(f"entities.{key}", "must be a list of ids")
    wanted: dict[str, list[str]] = {}
    for i, ref in enumerate(features):
        if not isinstance(ref, str) or ref.count(":") != 1:
            raise RecordError(f"features.{i}", f"expected 'group:feature', got {ref!r}")
        g, f = ref.split(":")
        wanted.setdefault(g, []).append(f)
    str_ids = [str(x) for x in ids]
    names = [key]
    results: list[dict[str, Any]] = [{"values": ids, "statuses": ["PRESENT"] * len(ids),
                                      "event_timestamps": ["1970-01-01T00:00:00Z"] * len(ids)}]
    for g, feats in wanted.items():
        spec = store.group(g)
        if spec.record_identifier != key:
            raise RecordError("entities", f"group {g!r} is keyed by {spec.record_identifier!r}, not {key!r}")
        got = store.get_records(g, str_ids, feats)
        ts = [None if r is None else _iso(r.event_time) for r in got]
        for f in feats:
            names.append(f)
            results.append({"values": [None if r is None else r.values.get(f) for r in got],
                            "statuses": ["NOT_FOUND" if r is None or r.values.get(f) is None else "PRESENT"
                                         for r in got],
                            "event_timestamps": ts})
    return {"metadata": {"feature_names": names}, "results": results}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def create_app(store: FeatureStore, max_body_bytes: int = 6 * 1024 * 1024, token: str | None = None) -> Guard:
    """A standalone feature-store server (`ferry features serve`): the routes behind the token and payload gate."""
    app = FastAPI(title="Ferry feature store", version="1")
    app.include_router(make_router(store))

    @app.get("/ping")
    @_errors_as_responses
    def ping() -> Response:
        store.ping()
        return _json({"status": "ok"})

    @app.get("/metrics")
    def prom() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Guard(app, max_body_bytes, token)
