"""Schemathesis cases from serving/openapi.yaml, sent with httpx (schemathesis' own transport uses requests,
which the urllib3 fork grafana-client brings breaks), and the checks every answer must pass: no 5xx, a status
the document lists for the route, errors that say what is wrong in a bounded message. Shared by the
in-process test (tests/unit/test_openapi_fuzz.py) and the one on a real Ray Serve."""

from __future__ import annotations

import json
from typing import Callable

import httpx
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from core.errors import MAX_MESSAGE
from serving import openapi

DOC = yaml.safe_load(openapi.SOURCE.read_text())
OPERATIONS = [(path, method) for path, item in DOC["paths"].items() for method in item
              if method in ("get", "put", "post", "delete")]


async def send(client: httpx.AsyncClient, kwargs: dict) -> httpx.Response:
    content = json.dumps(kwargs["json"]).encode() if "json" in kwargs else kwargs.get("data")
    return await client.request(kwargs["method"], kwargs["url"], headers=kwargs["headers"],
                                params=kwargs.get("params"), content=content)


def fuzz(schema, path: str, method: str, call: Callable[[dict], httpx.Response], examples: int = 25) -> None:
    """Seeded valid and invalid requests to one operation; `call` sends transport kwargs, returns the answer."""
    operation = schema[path][method]
    documented = DOC["paths"][path][method]["responses"]

    @given(st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)))
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        r = call(case.as_transport_kwargs(base_url="http://gateway"))
        assert r.status_code < 500, (r.status_code, r.text[:300])
        assert str(r.status_code) in documented, (r.status_code, r.text[:300])
        if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
            body = r.json()
            message = body.get("Message") or body.get("message") or body.get("error") or ""
            assert message and len(message) <= MAX_MESSAGE, body

    check()


