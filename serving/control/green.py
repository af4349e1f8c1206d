"""A rollout's green variant of any shape: a model in the gateway, a model on its own deployment, a pipeline
whose steps run in the gateway or on their own deployments, a serverless variant.

Deployments cannot be added to the running `ferry` application without rebuilding it (its import arguments
would change, and Ray Serve would restart every replica), so each deployment of a green variant is its own
Serve application, named as the deployment (`<endpoint>.<variant>` or `<endpoint>.<variant>.<step>`), without
a route prefix (reached only through its DeploymentHandle; not visible to the HTTP or gRPC proxies). The
control plane deploys these applications beside `ferry` in the same declarative config, for as long as the
variant is in the traffic state; the gateways' `reconfigure` builds the variant's runner with handles to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import FerryError, bad_request
from serving.control.state import AddedVariant

if TYPE_CHECKING:
    from featurestore.settings import FeatureStoreConfig

IMPORT_PATH = "serving.control.green:build"


def added_variant(name: str, green: dict) -> AddedVariant:
    """A green variant of the control API ({"model", "batching"} or {"variant", "models"}), checked: a 4xx says
    what is wrong."""
    from pydantic import ValidationError

    from serving.spec import ModelSpec, VariantSpec

    if green.get("variant") is None:
        return AddedVariant(model=green["model"], batching=green.get("batching"))
    try:
        spec = VariantSpec.model_validate({**green["variant"], "name": name})
        models = {n: ModelSpec.model_validate(m) for n, m in (green.get("models") or {}).items()}
    except ValidationError as err:
        raise FerryError(bad_request(f"green variant {name!r}: {str(err)[:500]}")) from None
    needed = {spec.model} if spec.model else {s.model for s in spec.pipeline if s.model}
    missing = sorted(needed - set(models))
    if missing:
        raise FerryError(bad_request(f"green variant {name!r} names model(s) {missing} that \"models\" does not give"))
    return AddedVariant(variant=spec.model_dump(mode="json", exclude_unset=True),
                        models={n: models[n].model_dump(mode="json") for n in sorted(needed)})


def deployments(endpoint: str, name: str, added: AddedVariant) -> list[str]:
    """The deployments (each its own application) that green variant `name` runs on."""
    from serving.deploy import own_deployments
    from serving.spec import VariantSpec

    if added.variant is None:
        return []
    return own_deployments(endpoint, VariantSpec.model_validate(added.variant))


def applications(endpoints: dict, features: FeatureStoreConfig | None) -> list[dict]:
    """Serve config entries (ServeApplicationSchema) of every added variant's deployments; `endpoints` maps
    endpoint names to their EndpointTraffic."""
    apps = []
    for endpoint, traffic in sorted(endpoints.items()):
        for name, added in sorted(traffic.added.items()):
            for deployment in deployments(endpoint, name, added):
                apps.append({"name": deployment, "route_prefix": None, "import_path": IMPORT_PATH,
                             "args": {"endpoint": endpoint, "deployment": deployment, "variant": added.variant,
                                      "models": added.models,
                                      "features": features.model_dump(mode="json") if features else None}})
    return apps


def build(args: dict):
    """Ray Serve application builder of one green deployment (a ModelServer or a StepServer)."""
    from featurestore.settings import FeatureStoreConfig
    from serving.deploy import step_deployment, variant_deployment
    from serving.spec import ModelSpec, VariantSpec

    v = VariantSpec.model_validate(args["variant"])
    models = {n: ModelSpec.model_validate(m) for n, m in args["models"].items()}
    endpoint, deployment = args["endpoint"], args["deployment"]
    if v.pipeline is None:
        return variant_deployment(endpoint, v, models[v.model])["handle"]
    step = next(s for s in v.pipeline if deployment == f"{endpoint}.{v.name}.{s.name}")
    features = FeatureStoreConfig.model_validate(args["features"]) if args.get("features") else None
    return step_deployment(endpoint, v.name, step, models, features)["handle"]


def runner(endpoint: str, name: str, added: AddedVariant, features: FeatureStoreConfig | None, gateway_replicas: int):
    """The gateway's runner of green variant `name` (models loaded here: call it off the event loop)."""
    from ray import serve

    from serving.gateway import variant_runner
    from serving.spec import ModelSpec, VariantSpec

    v = VariantSpec.model_validate(added.variant)
    models = {n: ModelSpec.model_validate(m) for n, m in added.models.items()}
    steps = {s.name: s for s in v.pipeline or ()}
    remote = {}
    for deployment in deployments(endpoint, name, added):
        step = steps.get(deployment.rsplit(".", 1)[-1]) if v.pipeline else None
        placed = step or v
        remote[deployment] = {
            "handle": serve.get_deployment_handle(deployment, app_name=deployment, _check_exists=False),
            "scales_to_zero": (placed.autoscaling is not None and placed.autoscaling.min_replicas == 0
                               or getattr(placed, "serverless", None) is not None
                               and placed.serverless.provisioned_concurrency == 0)}
    return variant_runner(endpoint, v, models, remote, features, gateway_replicas)
