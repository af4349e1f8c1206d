"""Schemathesis against GET /openapi.json (serving/openapi.yaml) on one in-process gateway (no Ray): every
documented route gets generated valid and invalid requests (seeded, bounded); no answer is a 5xx, every status
is one the document lists, every error says what is wrong in a bounded message (tests/openapi_fuzz.py).
/metrics and the control API need Ray (a replica context, the Control deployment): the same checks run on them
in tests/integration/test_serving_hostile.py."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
import schemathesis
from starlette.requests import Request

from serving import openapi
from tests.openapi_fuzz import OPERATIONS, fuzz, send
from tests.unit.test_hostile_inputs import gateway

ON_RAY = {"/metrics", "/control/traffic", "/control/endpoints/{endpoint}/weights"}


def asgi(gw):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            response = await gw(Request(scope, receive))
            await response(scope, receive, send)
    return app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return asgi(gateway(tmp_path_factory.mktemp("openapi")))


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)  # the document as the gateway serves it


@pytest.mark.parametrize(("path", "method"), [op for op in OPERATIONS if op[0] not in ON_RAY],
                         ids=lambda v: v if "/" in v else v.upper())
def test_every_route_against_its_description(app, api_schema, path, method):
    async def call(kwargs):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return await send(client, kwargs)

    fuzz(api_schema, path, method, lambda kwargs: asyncio.run(call(kwargs)))


def test_the_document_is_served_and_names_every_route():
    doc = orjson.loads(openapi.document())
    assert doc["openapi"].startswith("3.") and set(doc["paths"]) >= {
        "/ping", "/metrics", "/invocations", "/endpoints/{endpoint}/invocations", "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{version}/infer", "/ground-truth", "/monitoring/executions",
        "/control/traffic", "/control/endpoints/{endpoint}/weights", "/FeatureGroup/{name}",
        "/FeatureGroup/{name}/Record", "/BatchGetRecord", "/get-online-features", "/feature-groups",
        "/feature-groups/{name}"}
