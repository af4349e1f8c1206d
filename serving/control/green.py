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

from pydantic import BaseModel

from featurestore.settings import FeatureStoreConfig
from serving.control.state import AddedVariant, EndpointTraffic

if TYPE_CHECKING:
    from serving.variants import Remote

IMPORT_PATH = "serving.control.green:build"


class GreenApp(BaseModel):
    """The arguments of one green deployment's application (its Serve config `args`, JSON)."""

    endpoint: str
    deployment: str  # `<endpoint>.<variant>` or `<endpoint>.<variant>.<step>`
    added: AddedVariant
    features: FeatureStoreConfig | None = None  # for a feature-lookup step


def deployments(endpoint: str, added: AddedVariant) -> list[str]:
    """The deployments (each its own application) that a green variant runs on."""
    from serving.deploy import own_deployments

    return own_deployments(endpoint, added.variant)


def applications(endpoints: dict[str, EndpointTraffic], features: FeatureStoreConfig | None) -> list[dict]:
    """Serve config entries (ServeApplicationSchema) of every added variant's deployments."""
    apps = []
    for endpoint, traffic in sorted(endpoints.items()):
        for _, added in sorted(traffic.added.items()):
            for deployment in deployments(endpoint, added):
                args = GreenApp(endpoint=endpoint, deployment=deployment, added=added, features=features)
                apps.append({"name": deployment, "route_prefix": None, "import_path": IMPORT_PATH,
                             "args": args.model_dump(mode="json")})
    return apps


def build(args: dict):
    """Ray Serve application builder of one green deployment (a ModelServer or a StepServer)."""
    from serving.deploy import step_deployment, variant_deployment

    app = GreenApp.model_validate(args)
    v, models = app.added.variant, app.added.models
    if v.pipeline is None:
        return variant_deployment(app.endpoint, v, models[v.model]).handle
    step = next(s for s in v.pipeline if app.deployment == f"{app.endpoint}.{v.name}.{s.name}")
    return step_deployment(app.endpoint, v.name, step, models, app.features).handle


def runner(endpoint: str, added: AddedVariant, features: FeatureStoreConfig | None, gateway_replicas: int):
    """The gateway's runner of a green variant (models loaded here: call it off the event loop)."""
    from ray import serve

    from serving.deploy import scales_to_zero
    from serving.gateway import variant_runner
    from serving.variants import Remote

    v = added.variant
    steps = {f"{endpoint}.{v.name}.{s.name}": s for s in v.pipeline or ()}
    remote: dict[str, Remote] = {
        deployment: Remote(serve.get_deployment_handle(deployment, app_name=deployment, _check_exists=False),
                           scales_to_zero(steps.get(deployment, v)))
        for deployment in deployments(endpoint, added)}
    return variant_runner(endpoint, v, added.models, remote, features, gateway_replicas)
