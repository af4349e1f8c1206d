"""The async front door when its queue does not take a request (a Kafka broker down, a full disk): a 503
ServiceUnavailable in SageMaker's shape that says nothing was accepted, never a 500."""

from __future__ import annotations

import asyncio

import orjson
from starlette.requests import Request

from serving.adapters.async_ import AsyncFrontDoor
from serving.dataplane import DataPlane
from serving.spec import AsyncSpec


class Refusing:
    def put(self, *args):
        raise ConnectionError("broker down")


def test_a_queue_that_refuses_is_a_503_and_nothing_accepted(tmp_path):
    (tmp_path / "in.csv").write_text("1,2,3,4,5,6,7,8\n")
    door = AsyncFrontDoor("ep", AsyncSpec(output_path=str(tmp_path / "out"), input_prefixes=[str(tmp_path)]),
                          Refusing())
    scope = {"type": "http", "method": "POST", "path": "/endpoints/ep/async-invocations", "query_string": b"",
             "headers": [(b"x-amzn-sagemaker-inputlocation", str(tmp_path / "in.csv").encode()),
                         (b"x-amzn-sagemaker-content-type", b"text/csv")]}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    response = asyncio.run(door.handle(DataPlane({}, 1 << 20), Request(scope, receive), [], "POST"))
    assert response.status_code == 503
    assert response.headers["x-amzn-errortype"].startswith("ServiceUnavailable")
    assert "nothing was accepted" in orjson.loads(response.body)["Message"]
