"""The chart's RayService, run on a real Ray the way KubeRay runs it (no Kubernetes here): `ray start --head`
with the head container's environment and rayStartParams, ferry.yaml and the model laid out at baseDir as the
ConfigMap mounts them, then the rendered serveConfigV2 submitted to the dashboard (`serve deploy`, the API
KubeRay calls). The demo endpoint must then answer boto3 and tritonclient with the model's own predictions,
and refuse them without the token that came from the chart's Secret.

Ray runs in a bubblewrap sandbox shaped like the chart's pod: the root filesystem read-only
(readOnlyRootFilesystem), only the pod's /tmp (an emptyDir in the chart) and baseDir writable. The changes made to
what the chart renders: the proxies bind 127.0.0.1 instead of the pod's 0.0.0.0, the ports are free ones of this
machine, and Ray's temp dir is a unique folder of the pod's /tmp (to tell our processes from others')."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import yaml
from botocore.config import Config
from typer.testing import CliRunner

from ferry.cli import app
from ferry.demo import write_demo
from tests.helm import materialize, one, template
from tests.raycluster import clean_env, free_port, stop_process_group

TOKEN = "chart-secret-token"


@pytest.fixture(scope="module")
def rayservice(tmp_path_factory):
    """The chart rendered for the demo's ferry.yaml (via `ferry render helm-values`), deployed on a Ray head."""
    work = tmp_path_factory.mktemp("helm-ray")
    demo = work / "demo"
    write_demo(demo, n_rows=400)
    result = CliRunner().invoke(app, ["render", "helm-values", "-f", str(demo / "ferry.yaml")])
    assert result.exit_code == 0, result.output
    values = yaml.safe_load(result.stdout)
    values.update(auth={"token": TOKEN}, ray={"worker": {"enabled": False}})
    (work / "values.yaml").write_text(yaml.safe_dump(values))
    short = Path(tempfile.mkdtemp(prefix="fhr", dir="/var/tmp"))  # Ray's socket paths must stay short
    base, pod_tmp, http_port, grpc_port = short / "srv", short / "tmp", free_port(), free_port()
    ports = {k: free_port() for k in ("haproxy_stats_port", "haproxy_metrics_port", "fallback_http_port",
                                       "fallback_grpc_port")}
    docs = template(work / "values.yaml", sets=(f"baseDir={base}", f"ferry.server.http_port={http_port}",
                                                f"ferry.server.grpc_port={grpc_port}", "ferry.server.replica_port_base=26000",
                                                f"ray.haproxyBinary={Path(sys.executable).parent / 'ferry-haproxy'}",
                                                *(f"ferry.server.{k}={v}" for k, v in ports.items())))
    command, env = materialize(docs, "RayService", "ferry")
    assert (base / "ferry.yaml").is_file() and (base / "model.onnx").read_bytes() == (demo / "model.onnx").read_bytes()
    assert env["FERRY_SERVER__AUTH_TOKEN"] == TOKEN and env["HOME"] == "/tmp"
    serve_config = yaml.safe_load(one(docs, "RayService")["spec"]["serveConfigV2"])
    assert serve_config["http_options"] == {"host": "0.0.0.0", "port": http_port}
    serve_config["http_options"]["host"] = "127.0.0.1"
    (short / "serve.yaml").write_text(yaml.safe_dump(serve_config))

    rayservice = one(docs, "RayService")["spec"]["rayClusterConfig"]
    head = rayservice["headGroupSpec"]
    assert head["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    params = {**head["rayStartParams"], "dashboard-host": "127.0.0.1", "metrics-export-port": str(free_port())}
    dash = free_port()
    marker = f"/tmp/ray-{short.name}"  # Ray's temp dir in the pod's /tmp; names our processes for cleanup
    ray_start = ["ray", "start", "--head", "--block", f"--port={free_port()}", f"--dashboard-port={dash}",
                 f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
                 "--num-cpus=4", "--object-store-memory=200000000", f"--temp-dir={marker}",
                 "--disable-usage-stats"] + [f"--{k}={v}" for k, v in params.items()]
    # The container: a read-only root (readOnlyRootFilesystem), the pod's /tmp emptyDir and baseDir writable.
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.fail("bwrap (Debian's bubblewrap) is not installed: .ci/run installs it to run Ray on a read-only "
                    "root filesystem as the chart's pods do")
    pod_tmp.mkdir()
    args = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--bind", str(pod_tmp), "/tmp",
            "--bind", str(short), str(short), "--die-with-parent", "--chdir", str(base), "--"] + ray_start
    # The pod's environment is the chart's: none of this process's Ray settings (the session's ray.init() sets
    # RAY_AUTH_MODE=token here, and the pod has no token), or its Ray address.
    proc_env = clean_env(**env)
    log = (short / "ray.log").open("w")
    proc = subprocess.Popen(args, env=proc_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc_env["HOME"] = str(pod_tmp)  # `serve deploy` runs outside the pod: Ray's token is in the pod's /tmp
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (short / "ray.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{dash}/api/version", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Ray's dashboard did not answer in 120 s"
            time.sleep(1)
        deploy = subprocess.run(["serve", "deploy", str(short / "serve.yaml"), "-a", f"http://127.0.0.1:{dash}"],
                                env=proc_env, capture_output=True, text=True, timeout=120)
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        url = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{url}/v2/models/credit-risk/ready", timeout=5,
                             headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                status = subprocess.run(["serve", "status", "-a", f"http://127.0.0.1:{dash}"], env=proc_env,
                                        capture_output=True, text=True, timeout=60)
                pytest.fail(f"the chart's application did not become ready in 240 s:\n{status.stdout}{status.stderr}")
            time.sleep(1)
        yield {"url": url, "grpc": f"127.0.0.1:{grpc_port}", "demo": demo, "command": command}
    finally:
        stop_process_group(proc, marker)
        shutil.rmtree(short, ignore_errors=True)


def _expected(demo: Path, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sess = ort.InferenceSession(str(demo / "model.onnx"))
    label, proba = sess.run(None, {sess.get_inputs()[0].name: rows.astype(np.float32)})
    return label, proba


def test_head_container_runs_ray(rayservice):
    """KubeRay fills in the command itself (`ray start` with rayStartParams): the chart leaves it to KubeRay."""
    assert rayservice["command"] == []


def test_boto3_gets_the_model_predictions_with_the_chart_token(rayservice):
    rows = np.loadtxt(rayservice["demo"] / "test_features.csv", delimiter=",")[:5]
    body = "\n".join(",".join(repr(float(v)) for v in r) for r in rows)
    rt = boto3.client("sagemaker-runtime", endpoint_url=rayservice["url"], region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x", config=Config(retries={"max_attempts": 0}))
    with pytest.raises(rt.exceptions.ClientError) as refused:
        rt.invoke_endpoint(EndpointName="credit-risk", ContentType="text/csv", Body=body)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] in (401, 403)
    rt.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint",  # as docs/kubernetes.md shows
                            lambda request, **_: request.headers.__setitem__("Authorization", f"Bearer {TOKEN}"))
    out = rt.invoke_endpoint(EndpointName="credit-risk", ContentType="text/csv", Body=body)["Body"].read().decode()
    got = np.array([[float(v) for v in line.split(",")] for line in out.strip().splitlines()])
    label, proba = _expected(rayservice["demo"], rows)
    np.testing.assert_array_equal(got[:, 0], label)
    np.testing.assert_allclose(got[:, 1:], proba, rtol=1e-6)


def test_tritonclient_grpc_gets_the_model_predictions(rayservice):
    import tritonclient.grpc as grpcclient

    rows = np.loadtxt(rayservice["demo"] / "test_features.csv", delimiter=",")[:4].astype(np.float32)
    client = grpcclient.InferenceServerClient(rayservice["grpc"])
    headers = {"authorization": f"Bearer {TOKEN}"}  # gRPC metadata keys are lower case
    meta = client.get_model_metadata("credit-risk", headers=headers, as_json=True)
    x = grpcclient.InferInput(meta["inputs"][0]["name"], list(rows.shape), "FP32")
    x.set_data_from_numpy(rows)
    result = client.infer("credit-risk", [x], headers=headers)
    label, proba = _expected(rayservice["demo"], rows)
    np.testing.assert_array_equal(result.as_numpy("label"), label)
    np.testing.assert_allclose(result.as_numpy("probabilities"), proba, rtol=1e-6)
