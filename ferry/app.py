"""Ferry as a Ray Serve application: the builder that `ferry up`, `serve deploy` and KubeRay all run.

A Ray Serve config (and a KubeRay RayService's ``serveConfigV2``) names it as
``import_path: ferry.app:build`` with the deploy file itself as ``args``::

    applications:
    - name: ferry
      route_prefix: /
      import_path: ferry.app:build
      args: {config: {<ferry.yaml>}, base_dir: /etc/ferry}

`ferry render serve-config -f ferry.yaml` prints that document, so one ferry.yaml is the single source of
truth for a local `ferry up` and a cluster deployment alike. FERRY_* environment variables on the Ray nodes
override the file as they do for `ferry up` (secrets such as the auth token come in that way).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ferry.config import DeployFile, parse_config

if TYPE_CHECKING:
    from featurestore.settings import FeatureStoreConfig

IMPORT_PATH = "ferry.app:build"


def build(args: dict):
    """Ray Serve application builder: the `ferry` application for the deploy file in args["config"]."""
    doc = args.get("config") or {}
    base = Path(args.get("base_dir") or ".").resolve()
    cfg = parse_config(doc, base=base, environ=os.environ)
    # The overrides it was deployed with (`ferry up --address`) are in this process's environment (the
    # application's runtime_env): the control plane re-applies the very document that was deployed.
    env = {k: os.environ[k] for k in args.get("env_vars") or () if k in os.environ}
    return application(cfg, base, serve_doc=serve_config(doc, args.get("base_dir") or ".", cfg, env=env))


def application(cfg: DeployFile, base_dir: Path, serve_doc: dict | None = None):
    """The bound `ferry` application of a validated deploy file; `serve_doc`, the config document it is
    deployed from, lets the control plane change its traffic live."""
    from serving.deploy import build_app

    return build_app(cfg.models, cfg.endpoints, cfg.server,
                     kafka_bootstrap=cfg.kafka.bootstrap_servers if cfg.kafka else None,
                     schedules=cfg.monitoring_schedules, features=feature_api_config(cfg, base_dir),
                     serve_doc=serve_doc)


def feature_api_config(cfg: DeployFile, base_dir: Path) -> FeatureStoreConfig | None:
    """What the gateway needs to mount the feature store's REST API and run lookup steps (None without feature
    groups)."""
    from featurestore.settings import FeatureStoreConfig

    if not cfg.feature_groups:
        return None
    return FeatureStoreConfig(settings=cfg.feature_store_settings(base_dir), groups=cfg.feature_groups)


def serve_config(doc: dict, base_dir: str, cfg: DeployFile, env: dict[str, str] | None = None) -> dict:
    """The Ray Serve config document (ServeDeploySchema) that deploys ferry.yaml `doc` through `build`.

    `cfg` is the validated form of `doc`: it gives the ports; `doc` itself travels as the builder's args so
    that the cluster applies its own FERRY_* overrides and path base. `env` (FERRY_* overrides of the process
    that deploys) goes along as the application's runtime_env env_vars, over the cluster's own, and their names
    in the builder's args (the builder gives the control plane this same document)."""
    from serving.deploy import APP_NAME, GRPC_SERVICER

    s = cfg.server
    app = {"name": APP_NAME, "route_prefix": "/", "import_path": IMPORT_PATH,
           "args": {"config": doc, "base_dir": base_dir}}
    if env:
        app["runtime_env"] = {"env_vars": dict(env)}
        app["args"]["env_vars"] = sorted(env)
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": s.host, "port": s.http_port},
        "grpc_options": {"port": s.grpc_port, "grpc_servicer_functions": [GRPC_SERVICER]},
        "applications": [app],
    }
