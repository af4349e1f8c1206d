"""The `control` deployment: one replica owning the live traffic state, applying it, and driving rollouts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ray import serve

from core.errors import FerryError, bad_request, unavailable
from core.jsonio import write_text_atomic
from serving import metrics_hub
from serving.control import gauges
from serving.control import green as green_
from serving.control import rollout as guard
from serving.control.report import shadow_report, variant_totals
from serving.control.state import AddedVariant, Alarms, Rollout, RolloutRequest, TrafficState

if TYPE_CHECKING:
    from featurestore.settings import FeatureStoreConfig

log = logging.getLogger(__name__)
GATEWAY = "gateway"
REPORT_FRESH_S = 5.0  # a gateway replica that has not pushed its counts to the metrics hub for this long is gone
APPLY_TIMEOUT_S = 60.0  # for every gateway replica to apply a change (a green's models load in its reconfigure)


def _error(err: FerryError) -> dict:
    return {"error": asdict(err.error)}


def _with_input_columns(alarms: Alarms, green: dict[str, AddedVariant]) -> Alarms:
    """`alarms` with the names of green's captured input columns resolved (the drift baseline's features, else
    the first green model's feature_names metadata) and the bias alarm's settings checked; a 4xx says what is
    missing."""
    from core.jsonio import read_json
    from core.onnx import feature_names

    names = alarms.input_columns
    if not names and alarms.drift_baseline:
        try:
            features = read_json(Path(alarms.drift_baseline) / "constraints.json").get("features", [])
        except (OSError, ValueError) as err:
            raise FerryError(bad_request(f"drift baseline: {str(err)[:300]}")) from None
        names = [f["name"] for f in features] or None
    if alarms.bias_baseline:
        if not (Path(alarms.bias_baseline) / "analysis.json").is_file():
            raise FerryError(bad_request(f"bias baseline {alarms.bias_baseline!r} has no analysis.json"))
        if not alarms.bias_facets:
            raise FerryError(bad_request("a bias alarm needs the facet(s) its baseline was computed for"))
        model = next(iter(next(iter(green.values())).models.values()), None)
        names = names or (feature_names(model.path) if model else None)
        if not names:
            raise FerryError(bad_request("a bias alarm needs the names of the captured input columns: give "
                                         "input_columns, or a model with feature_names metadata"))
    return alarms.model_copy(update={"input_columns": names})


@serve.deployment(num_replicas=1)
class Control:
    """Changes go: validate -> persist -> re-apply the application with the gateway's new user_config."""

    def __init__(self, serve_doc: dict | None, initial: TrafficState, state_dir: str,
                 features: FeatureStoreConfig | None = None, capture_dirs: dict[str, str] | None = None):
        """`serve_doc` is the Serve config document this application was deployed from (ferry.app.serve_config;
        None when it was deployed with serve.run, which Ray cannot update in place); `initial` the deploy
        file's traffic state; `features` the feature store's configuration (for green feature-lookup steps on
        their own deployments); `capture_dirs` the capture folder of each endpoint that captures to one (what
        drift and bias alarms read)."""
        self.serve_doc = serve_doc
        self.features = features
        self.capture_dirs = capture_dirs or {}
        self.fingerprint = hashlib.sha256(json.dumps(serve_doc or initial.model_dump(), sort_keys=True).encode()).hexdigest()[:16]
        self.path = Path(state_dir) / f"traffic-{self.fingerprint}.json"
        self.state = initial
        for endpoint in self.state.endpoints:  # exported at 0 before the first rollout, so that one is an increase
            for outcome in ("completed", "rolled_back"):
                gauges.ROLLOUT_COUNT.labels(endpoint, outcome)
        self._hub = None  # the metrics hub: the gateway replicas' counts
        self._lock = asyncio.Lock()
        self._drivers: dict[str, asyncio.Task] = {}
        saved = self._load()
        if saved is not None and saved.version > 0 and serve_doc is not None:
            self.state = saved  # live changes made before a restart of the same deploy file
            asyncio.get_event_loop().create_task(self._apply_when_running())

    # --- state, persistence, application

    def _load(self) -> TrafficState | None:
        try:
            return TrafficState.model_validate_json(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            log.error("control state %s is unreadable; starting from the deploy file", self.path)
            return None

    def _save(self, state: TrafficState) -> None:
        write_text_atomic(self.path, state.model_dump_json())

    async def _apply_when_running(self) -> None:
        from serving.status import app_summary

        app = self.serve_doc["applications"][0]["name"]
        for _ in range(600):
            summary = await asyncio.to_thread(app_summary, app)
            if summary and summary["status"] == "RUNNING":
                try:
                    await self._apply(self.state)
                except FerryError as err:
                    log.error("%s", err.error.message)
                for endpoint, r in self.state.rollouts.items():
                    if r.status == "running":  # a rollout survives a restart: it goes on from its step
                        self._drivers[endpoint] = asyncio.get_running_loop().create_task(self._drive(endpoint))
                return
            await asyncio.sleep(1)
        log.error("application %s never became RUNNING: traffic state version %d not applied", app,
                  self.state.version)

    async def _apply(self, state: TrafficState) -> None:
        """Re-apply this application's config with the gateway's user_config = `state` (lightweight), and
        return once every gateway replica has applied it (its reconfigure has returned): a request sent after
        a change meets the new traffic. A FerryError (503) says why when they have not within APPLY_TIMEOUT_S."""
        from ray.serve.context import _get_global_client
        from ray.serve.schema import ServeDeploySchema

        from serving.status import DeployError, wait_applied

        doc = json.loads(json.dumps(self.serve_doc))
        traffic = state.model_dump(mode="json", include={"version", "endpoints"})
        doc["applications"][0]["deployments"] = [{"name": GATEWAY, "user_config": traffic}]
        doc["applications"][1:] = green_.applications(state.endpoints, self.features)  # green's deployments
        schema = ServeDeploySchema.model_validate({"applications": doc["applications"]})
        await asyncio.to_thread(_get_global_client().deploy_apps, schema)
        for endpoint, t in state.endpoints.items():
            total = sum(t.weights.values()) or 1.0
            for variant, w in t.weights.items():
                gauges.WEIGHTS.labels(endpoint, variant).set(w / total)
        try:
            await asyncio.to_thread(wait_applied, doc["applications"][0]["name"], GATEWAY, APPLY_TIMEOUT_S)
        except DeployError as err:
            raise FerryError(unavailable(f"traffic state version {state.version} is saved and sent to Ray "
                                         f"Serve, but the gateways have not applied it: {str(err)[:600]}")) from None

    async def _change(self, new: TrafficState) -> None:
        """Save, apply, then show `new` (traffic(), rollout()): what the API reports, the gateways apply. Called
        under the lock."""
        self._save(new)
        try:
            await self._apply(new)
        finally:
            self.state = new  # saved and sent, applied or not (the error says so)

    def _require_doc(self) -> None:
        if self.serve_doc is None:
            raise FerryError(unavailable("this application was deployed with serve.run, which Ray Serve cannot "
                                         "update in place; deploy it with `ferry up` or `serve deploy`"))

    # --- the API

    def traffic(self) -> dict:
        return self.state.model_dump()

    async def set_weights(self, endpoint: str, weights: dict) -> dict:
        """Validate, persist and apply new weights: {"traffic": state}, or {"error": ...} (a value, not an
        exception, so Ray does not wrap it)."""
        async with self._lock:
            try:
                self._require_doc()
                running = self.state.rollouts.get(endpoint)
                if running is not None and running.status == "running":
                    raise FerryError(bad_request(f"endpoint {endpoint!r} is being rolled out; its weights follow "
                                                 "the rollout"))
                new = self.state.with_weights(endpoint, weights)
                await self._change(new)
            except FerryError as err:
                return _error(err)
        return {"traffic": self.state.model_dump()}

    async def _snapshots(self, fresh_only: bool = False) -> list[dict]:
        """The gateway replicas' cumulative counts (serving.metrics.ServingMetrics.snapshot), as each pushed them
        to the metrics hub with its metric families; `fresh_only`: of the replicas alive now."""
        if self._hub is None:
            self._hub = metrics_hub.hub_for(serve.get_replica_context().app_name)
        return list((await self._hub.counts.remote(REPORT_FRESH_S if fresh_only else None)).values())

    async def shadow_report(self, endpoint: str) -> dict:
        """Each shadow of `endpoint` against production, added up over the gateway replicas."""
        return shadow_report(endpoint, await self._snapshots())

    def rollout(self, endpoint: str) -> dict:
        r = self.state.rollouts.get(endpoint)
        return {"rollout": r.model_dump() if r else None}

    async def start_rollout(self, endpoint: str, request: RolloutRequest) -> dict:
        """Begin a blue/green rollout of `endpoint` to the request's green variants."""
        async with self._lock:
            try:
                self._require_doc()
                current = self.state.endpoint(endpoint)
                running = self.state.rollouts.get(endpoint)
                if running is not None and running.status == "running":
                    raise FerryError(bad_request(f"endpoint {endpoint!r} is already being rolled out"))
                added = {n: g.added(n) for n, g in request.green.items()}
                r = await self._plan(endpoint, current.weights, added, request)
            except FerryError as err:
                return _error(err)
            new = self.state.with_variants(endpoint, added=added)
            try:
                await self._change(new.model_copy(update={"rollouts": {**new.rollouts, endpoint: r}}))
            except FerryError as err:  # saved and sent: the driver waits for the gateways to load green, or rolls back
                log.warning("rollout of %s: %s", endpoint, err.error.message)
            self._drivers[endpoint] = asyncio.get_running_loop().create_task(self._drive(endpoint))
        return {"rollout": r.model_dump()}

    async def _plan(self, endpoint: str, blue: dict, green: dict[str, AddedVariant],
                    request: RolloutRequest) -> Rollout:
        from core.onnx import OnnxModel

        clash = sorted(set(green) & set(blue))
        if clash:
            raise FerryError(bad_request(f"green variant name(s) {clash} are in use by blue; name them differently"))
        for name, g in green.items():
            for model in g.models.values():
                try:  # a model that cannot load must fail here, not in the gateways
                    await asyncio.to_thread(OnnxModel, model.path)
                except Exception as err:  # noqa: BLE001 - any reason a model cannot load is the caller's to fix
                    raise FerryError(bad_request(f"green variant {name!r}: model {model.name!r} does not "
                                                 f"load: {str(err)[:300]}")) from None
            try:  # what runs in the gateways must build here, not fail there
                await asyncio.to_thread(green_.runner, endpoint, g, self.features, 1)
            except FerryError as err:
                raise FerryError(bad_request(f"green variant {name!r}: {err.error.message[:300]}")) from None
            except Exception as err:  # noqa: BLE001 - a step that cannot import or start is the caller's to fix
                raise FerryError(bad_request(f"green variant {name!r} cannot be built: {type(err).__name__}: "
                                             f"{str(err)[:300]}")) from None
        alarms = request.alarms
        if (alarms.drift_baseline or alarms.bias_baseline) and not self.capture_dirs.get(endpoint):
            raise FerryError(bad_request("drift and bias alarms read green's captured traffic: enable the endpoint's "
                                         "data_capture to a folder"))
        alarms = _with_input_columns(alarms, green)
        now = time.time()
        return Rollout(endpoint=endpoint, strategy=request.strategy, blue={n: w for n, w in blue.items() if w > 0},
                       green={n: g.weight for n, g in request.green.items()},
                       shares=guard.shares(request.strategy, request.canary_percent, request.linear_step),
                       wait_interval_s=request.wait_interval_s, termination_wait_s=request.termination_wait_s,
                       deadline=now + request.max_duration_s, alarms=alarms, started_at=now)

    # --- the rollout driver

    async def _drive(self, endpoint: str) -> None:
        r = self.state.rollouts[endpoint]
        try:
            await self._wait_deployed(endpoint, list(r.green))
            await self._wait_loaded(endpoint, list(r.green))
            for i in range(r.step, len(r.shares)):
                weights = guard.weights_at(r.blue, r.green, r.shares[i])
                await self._update(endpoint, step=i, note=f"step {i + 1}/{len(r.shares)}: green takes "
                                                         f"{100 * r.shares[i]:g} % of the traffic", weights=weights)
                reason = await self._bake(endpoint, r.wait_interval_s)
                if reason:
                    return await self._roll_back(endpoint, reason)
            await self._update(endpoint, note=f"baked; blue kept idle for the termination wait "
                                              f"({r.termination_wait_s:g} s)")
            reason = await self._bake(endpoint, r.termination_wait_s)
            if reason:
                return await self._roll_back(endpoint, reason)
            await self._finish(endpoint)
        except Exception as err:  # noqa: BLE001 - whatever breaks the driver, traffic goes back to blue
            log.exception("rollout of %s failed", endpoint)
            await self._roll_back(endpoint, f"the rollout itself failed: {str(err)[:300]}")

    async def _wait_deployed(self, endpoint: str, names: list[str], timeout_s: float = 300.0) -> None:
        """Until the applications of the green variants' own deployments run; their failure to start is the
        rollout's (it rolls back, saying why)."""
        from serving.status import DeployError, wait_running

        t = self.state.endpoint(endpoint)
        for name in names:
            for app in green_.deployments(endpoint, t.added[name]) if name in t.added else ():
                try:
                    await asyncio.to_thread(wait_running, app, timeout_s)
                except DeployError as err:
                    raise RuntimeError(f"green variant {name!r} did not start: {str(err)[:400]}") from None

    async def _wait_loaded(self, endpoint: str, green: list[str], timeout_s: float = 120.0) -> None:
        """Until every gateway replica reports the green variants (loaded by its reconfigure)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            snaps = await self._snapshots(fresh_only=True)
            if snaps and all(f"{endpoint}/{g}" in s.get("variants", {}) for s in snaps for g in green):
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the gateways did not load the green variants {green} within {timeout_s:g} s")

    async def _bake(self, endpoint: str, seconds: float) -> str | None:
        """Watch the alarms for `seconds`; the reason of the first that goes off, or None."""
        r = self.state.rollouts[endpoint]
        start_at, started = time.time(), time.monotonic()
        before = variant_totals(await self._snapshots())
        while True:
            await asyncio.sleep(1.0)
            if time.time() > r.deadline:
                return "the rollout ran past its max duration"
            after = variant_totals(await self._snapshots())
            green = guard.window(before, after, endpoint, r.green)
            blue = guard.window(before, after, endpoint, r.blue)
            reason = (guard.built_in_alarm(r.alarms, green, blue)
                      or await asyncio.to_thread(guard.prometheus_alarm, r.alarms, endpoint, list(r.green)))
            if reason:
                return reason
            if time.monotonic() - started >= seconds:
                out = self.path.parent / "rollouts" / endpoint / f"{int(start_at)}"
                return await asyncio.to_thread(guard.monitor_alarm, r.alarms, endpoint, list(r.green),
                                               self.capture_dirs.get(endpoint), start_at, out)

    async def _update(self, endpoint: str, note: str, step: int | None = None, weights: dict | None = None) -> None:
        async with self._lock:
            r = self.state.rollouts[endpoint]
            changes = {"history": [*r.history, f"{time.strftime('%H:%M:%S')} {note}"]}
            if step is not None:
                changes["step"] = step
            new = self.state
            if weights is not None:
                new = new.with_weights(endpoint, weights, replace=True)
            await self._change(new.model_copy(update={"rollouts": {**new.rollouts,
                                                                    endpoint: r.model_copy(update=changes)}}))
        log.info("rollout of %s: %s", endpoint, note)

    async def _roll_back(self, endpoint: str, reason: str) -> None:
        async with self._lock:
            r = self.state.rollouts[endpoint]
            new = self.state.with_weights(endpoint, {**r.blue, **dict.fromkeys(r.green, 0.0)}, replace=True)
            new = new.with_variants(endpoint, removed=list(r.green))
            done = r.model_copy(update={"status": "rolled_back", "reason": reason, "finished_at": time.time(),
                                        "history": [*r.history, f"{time.strftime('%H:%M:%S')} rolled back: {reason}"]})
            try:
                await self._change(new.model_copy(update={"rollouts": {**new.rollouts, endpoint: done}}))
            except FerryError as err:  # saved and sent: nothing left to undo to
                log.error("rollout of %s: %s", endpoint, err.error.message)
        gauges.ROLLOUT_COUNT.labels(endpoint, "rolled_back").inc()
        log.warning("rollout of %s rolled back: %s", endpoint, reason)

    async def _finish(self, endpoint: str) -> None:
        async with self._lock:
            r = self.state.rollouts[endpoint]
            current = self.state.endpoint(endpoint)
            blue = [n for n in current.weights if n not in r.green]
            new = self.state.with_weights(endpoint, {**dict.fromkeys(blue, 0.0), **r.green}, replace=True)
            new = new.with_variants(endpoint, removed=blue)
            done = r.model_copy(update={"status": "completed", "finished_at": time.time(),
                                        "history": [*r.history, f"{time.strftime('%H:%M:%S')} completed: blue "
                                                                f"{blue} removed"]})
            try:
                await self._change(new.model_copy(update={"rollouts": {**new.rollouts, endpoint: done}}))
            except FerryError as err:  # saved and sent; green has all the traffic already
                log.error("rollout of %s: %s", endpoint, err.error.message)
        gauges.ROLLOUT_COUNT.labels(endpoint, "completed").inc()
        log.info("rollout of %s completed", endpoint)

    def metrics(self) -> bytes:
        """The control plane's own families (live weights, rollouts), for the gateway's /metrics."""
        from prometheus_client import REGISTRY, generate_latest

        names = {gauges.WEIGHTS._name, gauges.ROLLOUT_COUNT._name}

        class Families:
            def collect(self):
                return [m for m in REGISTRY.collect() if m.name in names]

        return generate_latest(Families())
