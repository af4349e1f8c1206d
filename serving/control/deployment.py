"""The `control` deployment: one replica owning the live traffic state and applying it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

from ray import serve

from core.errors import FerryError, unavailable
from serving.control.state import TrafficState

log = logging.getLogger(__name__)
GATEWAY = "gateway"


@serve.deployment(num_replicas=1)
class Control:
    """Changes go: validate -> persist -> re-apply the application with the gateway's new user_config."""

    def __init__(self, serve_doc: dict | None, initial: dict, state_dir: str):
        """`serve_doc` is the Serve config document this application was deployed from (ferry.app.serve_config;
        None when it was deployed with serve.run, which Ray cannot update in place); `initial` the deploy
        file's traffic state (a TrafficState dump)."""
        self.serve_doc = serve_doc
        self.fingerprint = hashlib.sha256(json.dumps(serve_doc or initial, sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(state_dir) / f"traffic-{self.fingerprint}.json"
        self.state = TrafficState.model_validate(initial)
        saved = self._load()
        if saved is not None and saved.version > 0 and serve_doc is not None:
            self.state = saved  # live changes made before a restart of the same deploy file
            asyncio.get_event_loop().create_task(self._apply_when_running())

    def _load(self) -> TrafficState | None:
        try:
            return TrafficState.model_validate_json(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            log.error("control state %s is unreadable; starting from the deploy file", self.path)
            return None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(self.state.model_dump_json())
        tmp.replace(self.path)

    async def _apply_when_running(self) -> None:
        from serving.status import app_summary

        app = self.serve_doc["applications"][0]["name"]
        for _ in range(600):
            summary = await asyncio.to_thread(app_summary, app)
            if summary and summary["status"] == "RUNNING":
                await self._apply()
                return
            await asyncio.sleep(1)
        log.error("application %s never became RUNNING: traffic state version %d not applied", app,
                  self.state.version)

    async def _apply(self) -> None:
        """Re-apply this application's config with the gateway's user_config = the state (lightweight)."""
        from ray.serve.context import _get_global_client
        from ray.serve.schema import ServeDeploySchema

        doc = json.loads(json.dumps(self.serve_doc))
        doc["applications"][0]["deployments"] = [{"name": GATEWAY, "user_config": self.state.model_dump()}]
        schema = ServeDeploySchema.model_validate({"applications": doc["applications"]})
        await asyncio.to_thread(_get_global_client().deploy_apps, schema)

    def traffic(self) -> dict:
        return self.state.model_dump()

    async def set_weights(self, endpoint: str, weights: dict) -> dict:
        """Validate, persist and apply new weights: {"traffic": state}, or {"error": ...} (a value, not an
        exception, so Ray does not wrap it)."""
        try:
            if self.serve_doc is None:
                raise FerryError(unavailable("this application was deployed with serve.run, which Ray Serve cannot "
                                             "update in place; deploy it with `ferry up` or `serve deploy`"))
            new = self.state.with_weights(endpoint, weights)
        except FerryError as err:
            return {"error": asdict(err.error)}
        self.state = new
        self._save()
        await self._apply()
        return {"traffic": self.state.model_dump()}
