"""helm/ferry: lint, render over several values files, validate every manifest, and hold the chart to ferry.yaml.

These run the real `helm` (built by .ci/run from its Go module) and fail, with the reason, when it is missing.
"""

from __future__ import annotations

import base64
import copy
import os
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from ferry.cli import app
from tests.helm import (CHART, VALUES_DIR, by_kind, containers, helm, one, pod_specs, template,
                        validation_errors)

CI_VALUES = sorted(VALUES_DIR.glob("*-values.yaml"))
IDS = [p.name.removesuffix("-values.yaml") for p in CI_VALUES]
WORKLOADS = ("RayService", "Deployment", "StatefulSet")


def test_ci_values_files_cover_the_required_shapes():
    assert {"minimal", "production", "external-services", "in-chart-services"} <= set(IDS)


def test_lint_with_defaults():
    out = helm("lint", "--strict", str(CHART)).stdout
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_lint(values):
    assert "0 chart(s) failed" in helm("lint", "--strict", str(CHART), "-f", str(values)).stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_rendered_manifest_validates(values):
    docs = template(values)
    assert {"RayService", "ConfigMap"} <= {d["kind"] for d in docs}
    errors = {f"{d['kind']}/{d['metadata']['name']}": validation_errors(d) for d in docs}
    assert not {k: v for k, v in errors.items() if v}


def _merged_ferry(values) -> dict:
    """The `ferry` mapping helm gives the templates: the chart's default deep-merged with the values file's."""
    def merge(base, over):
        if isinstance(base, dict) and isinstance(over, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
        return over
    default = yaml.safe_load((CHART / "values.yaml").read_text())["ferry"]
    return merge(default, yaml.safe_load(values.read_text()).get("ferry") or {})


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_serve_config_v2_is_what_ferry_render_serve_config_prints(values, tmp_path):
    """One source of truth: the RayService runs the document `ferry render serve-config` makes of the very
    ferry.yaml the ConfigMap holds, and that ferry.yaml is the values' `ferry` section."""
    docs = template(values)
    ferry_yaml = one(docs, "ConfigMap", "ferry-config")["data"]["ferry.yaml"]
    assert yaml.safe_load(ferry_yaml) == _merged_ferry(values)
    (tmp_path / "ferry.yaml").write_text(ferry_yaml)
    result = CliRunner().invoke(app, ["render", "serve-config", "-f", str(tmp_path / "ferry.yaml"),
                                      "--base-dir", "/srv/ferry"])
    assert result.exit_code == 0, result.output
    rendered = yaml.safe_load(one(docs, "RayService")["spec"]["serveConfigV2"])
    assert rendered == yaml.safe_load(result.stdout)


@pytest.mark.parametrize("values", CI_VALUES, ids=IDS)
def test_every_container_has_resources_probes_and_runs_locked_down(values):
    docs = template(values)
    for doc in [d for d in docs if d["kind"] in WORKLOADS]:
        for pod in pod_specs(doc):
            assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
            assert pod["automountServiceAccountToken"] is False
        for c in containers(doc):
            where = f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), where
            assert c["livenessProbe"] and c["readinessProbe"], where
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            if c["image"].startswith("ferry") or "/ferry:" in c["image"]:  # Ray writes /tmp: an emptyDir
                assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, where
    rayservice = one(docs, "RayService")["spec"]["rayClusterConfig"]
    if rayservice["enableInTreeAutoscaling"]:
        auto = rayservice["autoscalerOptions"]
        assert auto["resources"]["limits"] and auto["securityContext"]["readOnlyRootFilesystem"] is True


def test_ray_head_and_workers_mount_ferry_yaml_and_files_at_base_dir():
    docs = template(VALUES_DIR / "production-values.yaml")
    cm = one(docs, "ConfigMap", "ferry-config")
    files = yaml.safe_load((VALUES_DIR / "production-values.yaml").read_text())["files"]
    assert {base64.b64decode(v) for v in cm["binaryData"].values()} == {base64.b64decode(v) for v in files.values()}
    rs = one(docs, "RayService")
    for c in containers(rs):
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/srv/ferry"]["name"] == "data"
        assert mounts["/srv/ferry/ferry.yaml"]["subPath"] == "ferry.yaml"
        for path, content in files.items():
            key = mounts[f"/srv/ferry/{path}"]["subPath"]
            assert cm["binaryData"][key] == content
    (claim,) = {v["persistentVolumeClaim"]["claimName"] for p in pod_specs(rs) for v in p["volumes"]
                if "persistentVolumeClaim" in v}
    assert one(docs, "PersistentVolumeClaim")["metadata"]["name"] == claim


def test_serving_service_and_ports_follow_ferry_yaml():
    docs = template(VALUES_DIR / "minimal-values.yaml",
                    sets=("ferry.server.http_port=8181", "ferry.server.grpc_port=9191"))
    rs = one(docs, "RayService")["spec"]
    ports = {p["name"]: p["port"] for p in rs["serveService"]["spec"]["ports"]}
    assert ports == {"serve": 8181, "serve-grpc": 9191}
    head = containers(one(docs, "RayService"))[0]
    assert {p["name"]: p["containerPort"] for p in head["ports"]}["serve"] == 8181
    assert rs["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["metrics-export-port"] == "8090"


def _ray_env(docs) -> dict:
    head = containers(one(docs, "RayService"))[0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in head["env"]}


def _ferry_up_env(server: dict) -> dict:
    """The Ray environment `ferry up` sets for this server section (serving.deploy.ray_env), for the image:
    HAProxy installed, ferry-haproxy where pip puts scripts, state on the emptyDir /tmp."""
    from serving import deploy
    from serving.spec import ServerSpec

    spec = ServerSpec(**server)
    kind = "haproxy" if spec.ingress == "auto" else spec.ingress
    env = deploy.ray_env(spec, kind, haproxy_binary=IMAGE_HAPROXY, state_dir=IMAGE_STATE_DIR)
    return {k: v for k, v in env.items() if k.startswith("RAY_") or k.startswith("FERRY_HAPROXY")}


IMAGE_HAPROXY = "/usr/local/bin/ferry-haproxy"  # the Dockerfile's pip install puts console scripts here
IMAGE_STATE_DIR = "/tmp/ferry"


@pytest.mark.parametrize("server", [
    {}, {"ingress": "python"}, {"throughput_optimized": False}, {"grpc_max_message_bytes": 1048576},
    {"haproxy_stats_port": 18404, "replica_port_base": 40000}, {"drain_seconds": 0}, {"drain_seconds": 30},
], ids=["defaults", "python", "no-throughput-flags", "grpc-size", "ports", "no-drain", "drain-30"])
def test_ray_containers_get_the_environment_ferry_up_sets(server):
    """What `ferry up` puts in Ray's environment (serving/deploy.py start_ray) is on the chart's Ray containers:
    if this fails, start_ray changed; give the chart's ferry.rayEnvMap (templates/_ray.tpl) the same change."""
    sets = tuple(f"ferry.server.{k}={v}" for k, v in server.items())
    chart = {k: v for k, v in _ray_env(template(VALUES_DIR / "minimal-values.yaml", sets=sets)).items()
             if k.startswith("RAY_") or k.startswith("FERRY_HAPROXY")}
    assert chart == _ferry_up_env(server)


def test_ray_env_values_extend_and_override():
    env = _ray_env(template(VALUES_DIR / "minimal-values.yaml",
                            sets=("ray.env.RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP=1", "ray.env.EXTRA=x")))
    assert env["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] == "1" and env["EXTRA"] == "x"


def test_secrets_stay_in_the_secret():
    values = VALUES_DIR / "external-services-values.yaml"
    docs = template(values)
    secret = one(docs, "Secret")
    assert secret["stringData"] == {"auth-token": "s3cr3t-t0ken", "redis-url": "redis://:p4ss@redis.data.svc:6379/0"}
    for doc in docs:
        if doc["kind"] != "Secret":
            text = yaml.safe_dump(doc)
            assert "s3cr3t-t0ken" not in text and "p4ss" not in text, doc["kind"]
    env = _ray_env(docs)
    assert env["FERRY_SERVER__AUTH_TOKEN"] == {"secretKeyRef": {"name": "ferry-secrets", "key": "auth-token"}}
    assert env["FERRY_REDIS__URL"] == {"secretKeyRef": {"name": "ferry-secrets", "key": "redis-url"}}
    assert env["FERRY_KAFKA__BOOTSTRAP_SERVERS"] == "kafka.data.svc:9092"


def test_existing_secrets_are_referenced_not_created():
    docs = template(VALUES_DIR / "production-values.yaml")
    assert not by_kind(docs, "Secret")
    env = _ray_env(docs)
    assert env["FERRY_SERVER__AUTH_TOKEN"] == {"secretKeyRef": {"name": "ferry-auth", "key": "token"}}
    assert env["FERRY_REDIS__URL"] == {"secretKeyRef": {"name": "ferry-redis", "key": "url"}}


def test_monitor_deployment_runs_the_schedules_and_ray_does_not():
    docs = template(VALUES_DIR / "production-values.yaml")
    assert _ray_env(docs)["FERRY_MONITORING_SCHEDULES"] == "[]"
    monitor = one(docs, "Deployment", "ferry-monitor")
    assert monitor["spec"]["replicas"] == 1
    (c,) = containers(monitor)
    assert c["command"][:3] == ["ferry", "monitor", "run"] and "--config=/srv/ferry/ferry.yaml" in c["command"]
    assert "FERRY_MONITORING_SCHEDULES" not in {e["name"] for e in c["env"]}
    assert one(docs, "Service", "ferry-monitor")["spec"]["ports"][0]["name"] == "metrics"
    endpoints = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert {(e["port"], e["path"]) for e in endpoints} == {("serve", "/metrics"), ("metrics", "/metrics")}


def test_schedules_stay_inside_ray_serve_when_the_monitor_deployment_is_off():
    docs = template(VALUES_DIR / "production-values.yaml", sets=("monitor.enabled=false",))
    assert "FERRY_MONITORING_SCHEDULES" not in _ray_env(docs)
    assert not [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "ferry-monitor"]


def test_ingest_workers_are_one_consumer_group_scaled_by_replicas():
    docs = template(VALUES_DIR / "production-values.yaml")
    ingest = one(docs, "Deployment", "ferry-ingest")
    assert ingest["spec"]["replicas"] == 3
    (c,) = containers(ingest)
    assert c["command"][:3] == ["ferry", "features", "ingest"]
    assert "--consumer-group=ferry-features" in c["command"] and "--instance-id=$(POD_NAME)" in c["command"]


def test_in_chart_redis_and_kafka_are_wired_to_ferry():
    docs = template(VALUES_DIR / "in-chart-services-values.yaml")
    env = _ray_env(docs)
    assert env["FERRY_KAFKA__BOOTSTRAP_SERVERS"] == "ferry-kafka:9092"
    assert one(docs, "Secret")["stringData"]["redis-url"] == "redis://ferry-redis:6379/0"
    assert {d["metadata"]["name"] for d in by_kind(docs, "StatefulSet")} == {"ferry-kafka", "ferry-redis"}
    kafka = containers(one(docs, "StatefulSet", "ferry-kafka"))[0]
    assert "advertised.listeners=PLAINTEXT://ferry-kafka:9092" in kafka["command"][-1]
    assert one(docs, "Service", "ferry-kafka")["spec"]["ports"][0]["port"] == 9092


@pytest.mark.parametrize("sets, reason", [
    (("ferry.server.host=127.0.0.1",), "ferry.server.host is 127.0.0.1"),
    (("ferry.server.auth_token=abc",), "keep the token out of ferry.yaml"),
    (("ferry.monitoring_schedules[0].name=dq", "ferry.monitoring_schedules[0].endpoint=credit-risk",
      "ferry.monitoring_schedules[0].baseline=b"), "set storage.enabled=true"),
    (("ingest.enabled=true",), "ferry.feature_groups is empty"),
    (("kafka.bootstrapServers=k:9092", "kafka.deploy.enabled=true"), "not both"),
    (("redis.url=redis://r:6379/0", "redis.deploy.enabled=true"), "not both"),
    (("auth.token=t", "auth.existingSecret=s"), "not both"),
], ids=["loopback", "token-in-ferry-yaml", "monitor-without-storage", "ingest-without-groups", "two-kafkas",
        "two-redises", "two-tokens"])
def test_installs_that_cannot_work_fail_with_the_reason(sets, reason):
    args = ["template", "ferry", str(CHART), "-f", str(VALUES_DIR / "minimal-values.yaml")]
    for s in sets:
        args += ["--set", s]
    proc = helm(*args, check=False)
    assert proc.returncode != 0 and reason in proc.stderr, proc.stderr


@pytest.mark.parametrize("sets, field", [
    (("ferry.server.http_prot=8080",), "http_prot"),
    (("ferry.endpoints[0].name=credit-risk", "ferry.endpoints[0].variants[0].replicas=many"), "replicas"),
    (("ray.worker.replicas=-1",), "/ray/worker/replicas"),
    (("ingress.enabled=yes",), "/ingress/enabled"),
])
def test_values_schema_names_the_wrong_field(sets, field):
    args = ["lint", str(CHART), "-f", str(VALUES_DIR / "minimal-values.yaml")]
    for s in sets:
        args += ["--set", s]
    proc = helm(*args, check=False)
    assert proc.returncode != 0 and field in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _chart_copy(tmp_path):
    chart = tmp_path / "ferry"
    shutil.copytree(CHART, chart)
    return chart


def test_alert_rules_become_a_prometheus_rule_only_when_the_chart_has_some(tmp_path):
    chart = _chart_copy(tmp_path)
    alerts = chart / "files" / "alerts"
    shutil.rmtree(alerts, ignore_errors=True)
    on = ("metrics.prometheusRule.enabled=true",)
    assert not by_kind(template(VALUES_DIR / "minimal-values.yaml", sets=on, chart=chart), "PrometheusRule")
    alerts.mkdir(parents=True)
    rules = {"groups": [{"name": "ferry-serving", "rules": [
        {"alert": "FerryErrors", "expr": "sum(rate(ferry_requests_total{code=~'5..'}[5m])) > 0", "for": "5m",
         "labels": {"severity": "page"}, "annotations": {"summary": "5xx from Ferry"}}]}]}
    (alerts / "serving.yaml").write_text(yaml.safe_dump(rules))
    (alerts / "serving_test.yaml").write_text(yaml.safe_dump({"rule_files": ["serving.yaml"], "tests": []}))
    docs = template(VALUES_DIR / "minimal-values.yaml", sets=on, chart=chart)
    rule = one(docs, "PrometheusRule")
    assert rule["spec"]["groups"] == rules["groups"]
    assert not validation_errors(rule)
    assert not by_kind(template(VALUES_DIR / "minimal-values.yaml", chart=chart), "PrometheusRule")


def test_dashboards_become_sidecar_config_maps(tmp_path):
    chart = _chart_copy(tmp_path)
    dash = chart / "files" / "dashboards"
    shutil.rmtree(dash, ignore_errors=True)
    dash.mkdir(parents=True)
    (dash / "ferry_serving.json").write_text('{"title": "Ferry serving", "panels": []}')
    docs = template(VALUES_DIR / "minimal-values.yaml", chart=chart,
                    sets=("grafana.dashboards.enabled=true", "grafana.dashboards.annotations.grafana_folder=Ferry"))
    cm = one(docs, "ConfigMap", "ferry-dashboard-ferry-serving")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Ferry"}
    assert yaml.safe_load(cm["data"]["ferry_serving.json"]) == {"title": "Ferry serving", "panels": []}
    assert not validation_errors(cm)


def test_notes_say_how_to_call_an_endpoint_with_boto3_and_tritonclient():
    out = helm("install", "ferry", str(CHART), "--dry-run=client", "-f",
               str(VALUES_DIR / "external-services-values.yaml")).stdout
    notes = out[out.index("NOTES:"):]
    for needle in ('boto3.client("sagemaker-runtime"', 'EndpointName="credit-risk"', "tritonclient.http",
                   "grpc.InferenceServerClient(\"127.0.0.1:9000\")", "port-forward svc/ferry 8080:8080 9000:9000",
                   "Authorization"):
        assert needle in notes, needle


def test_crd_validation_catches_mistakes():
    """The CRD check is not vacuous: a misspelt field and a wrong type are errors."""
    rs = one(template(VALUES_DIR / "production-values.yaml"), "RayService")
    bad = copy.deepcopy(rs)
    bad["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartparams"] = {}
    assert any("rayStartparams" in e for e in validation_errors(bad))
    bad = copy.deepcopy(rs)
    bad["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = "2"
    assert validation_errors(bad)
    bad = copy.deepcopy(rs)
    bad["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["livenessProbe"]["exec"] = "x"
    assert validation_errors(bad)


def test_notes_warn_when_nothing_would_be_served():
    out = helm("install", "ferry", str(CHART), "--dry-run=client").stdout
    assert "ferry.endpoints is empty" in out[out.index("NOTES:"):]
    out = helm("install", "ferry", str(CHART), "--dry-run=client", "-f", str(VALUES_DIR / "minimal-values.yaml")).stdout
    assert "ferry.endpoints is empty" not in out
