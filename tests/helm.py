"""Helpers of the helm chart tests: run the real `helm`, validate rendered manifests against published schemas.

Core kinds are checked with kubernetes-validate (strict: an unknown field is an error) at the Kubernetes versions
in K8S_VERSIONS; the CRDs (RayService, ServiceMonitor, PrometheusRule) against the OpenAPI schemas of their
published CustomResourceDefinitions in helm/crd-schemas/ (see the README there).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "ferry"
CRD_DIR = ROOT / "helm" / "crd-schemas"
VALUES_DIR = CHART / "ci"
K8S_VERSIONS = ("1.27.0", "1.37.0")  # the chart's minimum kubeVersion and the newest kubernetes-validate ships
CRDS = {("ray.io/v1", "RayService"): "ray.io_rayservices.yaml",
        ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
        ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml"}


def helm_bin() -> str:
    """The `helm` on PATH; fail (never skip) with the reason when it is missing."""
    path = shutil.which("helm")
    if path is None:
        pytest.fail("helm is not on PATH: .ci/run builds it with `go install helm.sh/helm/v4/cmd/helm@v4.3.2` "
                    "and puts $(go env GOPATH)/bin on PATH; do the same to run these tests")
    return path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([helm_bin(), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def template(*values: Path | str, sets: tuple[str, ...] = (), release: str = "ferry",
             chart: Path = CHART) -> list[dict]:
    """`helm template` of the chart with these values files; the rendered documents."""
    args = ["template", release, str(chart), "--namespace", "ml"]
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def containers(doc: dict) -> list[dict]:
    """Every container spec of a rendered workload (RayService head and worker groups included)."""
    if doc["kind"] == "RayService":
        rc = doc["spec"]["rayClusterConfig"]
        pods = [rc["headGroupSpec"]["template"]] + [g["template"] for g in rc.get("workerGroupSpecs", [])]
    elif doc["kind"] in ("Deployment", "StatefulSet"):
        pods = [doc["spec"]["template"]]
    else:
        return []
    return [c for p in pods for c in p["spec"].get("initContainers", []) + p["spec"]["containers"]]


def pod_specs(doc: dict) -> list[dict]:
    if doc["kind"] == "RayService":
        rc = doc["spec"]["rayClusterConfig"]
        groups = [rc["headGroupSpec"]] + rc.get("workerGroupSpecs", [])
        return [g["template"]["spec"] for g in groups]
    if doc["kind"] in ("Deployment", "StatefulSet"):
        return [doc["spec"]["template"]["spec"]]
    return []


# ---- schema validation ----------------------------------------------------------------------------------------

def _openapi_to_jsonschema(node):
    """A CRD's structural OpenAPI v3 schema as JSON Schema (draft 4), strict like the API server's field
    validation: an object that lists its properties rejects others unless it preserves unknown fields."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")
           and k not in ("nullable", "format")}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in node and "additionalProperties" not in node and not node.get(
            "x-kubernetes-preserve-unknown-fields") and not node.get("x-kubernetes-embedded-resource"):
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    crd = yaml.safe_load((CRD_DIR / CRDS[(api_version, kind)]).read_text())
    group, version = api_version.split("/")
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    (ver,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return jsonschema.Draft4Validator(_openapi_to_jsonschema(ver["schema"]["openAPIV3Schema"]))


def validation_errors(doc: dict) -> list[str]:
    """Why a rendered manifest is invalid (empty when it is valid), against every pinned Kubernetes version."""
    key = (doc["apiVersion"], doc["kind"])
    if key in CRDS:
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                for e in crd_validator(*key).iter_errors(doc)]
    import kubernetes_validate

    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"k8s {version}: {'.'.join(map(str, e.path))}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"k8s {version}: {e.message}")
    return errors


# ---- running a rendered container here ---------------------------------------------------------------------------

def materialize(docs: list[dict], kind: str, name: str, pod_name: str = "ferry-test-0") -> tuple[list[str], dict]:
    """Lay out on this machine what kubelet would for the first container of a rendered workload (render with
    --set baseDir=<a local folder>): the ConfigMap items it mounts are written at their mount paths. Returns its
    command, with $(VAR) expanded as Kubernetes does, and its environment (Secrets and the pod name resolved)."""
    import base64

    doc = one(docs, kind, name)
    pod = pod_specs(doc)[0]
    c = pod["containers"][0]
    config_maps = {v["name"]: v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
    for m in c.get("volumeMounts", []):
        if m["name"] in config_maps:
            cm = one(docs, "ConfigMap", config_maps[m["name"]])
            dest = Path(m["mountPath"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            if m["subPath"] in cm.get("data", {}):
                dest.write_text(cm["data"][m["subPath"]])
            else:
                dest.write_bytes(base64.b64decode(cm["binaryData"][m["subPath"]]))
        elif m["mountPath"] != "/tmp":
            Path(m["mountPath"]).mkdir(parents=True, exist_ok=True)
    secrets = {s["metadata"]["name"]: s.get("stringData", {}) for s in by_kind(docs, "Secret")}
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in e["valueFrom"]:
            ref = e["valueFrom"]["secretKeyRef"]
            env[e["name"]] = secrets[ref["name"]][ref["key"]]
        elif e["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[e["name"]] = pod_name
    command = [re.sub(r"\$\((\w+)\)", lambda mt: env.get(mt.group(1), mt.group(0)), a)
               for a in c.get("command", []) + c.get("args", [])]
    return command, env
