"""Guarded blue/green rollouts on real Ray Serve under steady load: every strategy completes with no failed
request; a bad green rolls back by a built-in alarm, by a real Prometheus alert, and by the monitor's drift
finding; a rollout survives a restart of the control plane."""

from __future__ import annotations

import sys
import time
from subprocess import run

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from ferry.demo import AB_ENDPOINT, MODEL_FEATURES, model_matrix
from monitor.jobs import baseline_bias, baseline_data_quality
from tests.integration.test_control import ROW, Load
from tests.integration.test_first_hour import DOCS, run_block, runnable_blocks
from tests.prometheus_server import prometheus_server

EP = "rolling"


def green_file(tmp_path, demo_dir, name: str, model: str = "model.onnx") -> str:
    doc = {"models": [{"name": "green-model", "path": str(demo_dir / model)}],
           "endpoints": [{"name": EP, "variants": [{"name": name, "model": "green-model"}]}]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def rollout(ferry_url: str, to: str, *options: str) -> tuple[int, str]:
    r = run([sys.executable, "-m", "ferry.cli", "rollout", EP, "--to", to, "--url", ferry_url, *options],
            capture_output=True, text=True, timeout=300)
    return r.returncode, r.stderr


def serving_variants(ferry_url: str) -> set[str]:
    """The variants answering the next 40 requests (the control plane's changes are applied by every gateway
    replica before its API, and so the CLI, returns)."""
    with httpx.Client(timeout=30) as c:
        return {c.post(f"{ferry_url}/endpoints/{EP}/invocations", content=ROW,
                       headers={"content-type": "text/csv"}).headers["x-amzn-invoked-production-variant"]
                for _ in range(40)}


def current(ferry_url: str) -> str:
    return next(iter(httpx.get(f"{ferry_url}/control/traffic").json()["endpoints"][EP]["weights"]))


@pytest.mark.parametrize("strategy, options", [
    ("all-at-once", []), ("canary", ["--canary-percent", "30"]), ("linear", ["--linear-step", "50"])])
def test_each_strategy_completes_with_no_failed_request(ferry_url, demo_dir, tmp_path, strategy, options):
    name = f"G-{strategy}"
    with Load(f"{ferry_url}/endpoints/{EP}/invocations") as load:
        code, out = rollout(ferry_url, green_file(tmp_path, demo_dir, name), "--strategy", strategy, *options,
                            "--wait-interval", "2", "--termination-wait", "1")
    assert code == 0, out
    assert load.failed == [] and sum(load.variants.values()) > 100, load.failed[:3]
    assert name in load.variants  # green answered during the rollout
    assert serving_variants(ferry_url) == {name}  # blue removed
    assert httpx.get(f"{ferry_url}/control/traffic").json()["endpoints"][EP]["weights"] == {name: 1.0}


def test_a_failing_green_rolls_back_by_the_built_in_alarm(ferry_url, demo_dir, tmp_path):
    """Green fails every single-row request (ModelError): at most the canary share of one bake window's requests
    fail (the issue's bound; the alarm trips once green has min_requests in the window), then blue takes
    everything back. Prints the measured figure."""
    share, bake = 0.10, 20.0
    blue = current(ferry_url)
    with Load(f"{ferry_url}/endpoints/{EP}/invocations") as load:
        started = time.monotonic()
        code, out = rollout(ferry_url, green_file(tmp_path, demo_dir, "Broken", "fragile8.onnx"),
                            "--strategy", "canary", "--canary-percent", f"{100 * share:g}", "--wait-interval", f"{bake:g}")
        elapsed = time.monotonic() - started
        failed, answered = len(load.failed), sum(load.variants.values()) + len(load.failed)
        time.sleep(1)
    assert code == 1 and "rolled back" in out and "error rate" in out, out
    bound = share * answered / elapsed * bake  # the canary share of the requests of one bake window
    print(f"\nbad canary ({100 * share:g} %, {bake:g} s bake): {failed} failed of {answered} requests in {elapsed:.1f} s "
          f"({answered / elapsed:.0f}/s); bound {bound:.0f}")
    assert 0 < failed <= bound, (failed, bound)
    assert len(load.failed) == failed  # none after the rollback
    assert serving_variants(ferry_url) == {blue}
    assert "Broken" not in httpx.get(f"{ferry_url}/control/traffic").json()["endpoints"][EP]["weights"]


def test_a_prometheus_alert_rolls_back(ferry_url, demo_dir, tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "rollout-test", "rules": [{
        "alert": "GreenSeen", "expr": f'sum by (endpoint, variant) (ferry_invocations_total{{endpoint="{EP}",'
                                      f'variant="PromGreen",code="200"}}) > 0', "for": "0s"}]}]}))
    blue = current(ferry_url)
    with prometheus_server(tmp_path / "prom", {"ferry": [ferry_url.removeprefix("http://")]}, [rules]) as prom:
        prom.wait_for(lambda: prom.value('up{job="ferry"}') == 1.0, 30, "the ferry target up")
        with Load(f"{ferry_url}/endpoints/{EP}/invocations") as load:
            code, out = rollout(ferry_url, green_file(tmp_path, demo_dir, "PromGreen"), "--strategy", "canary",
                                "--canary-percent", "50", "--wait-interval", "60", "--prometheus-url", prom.url,
                                "--alarm", "GreenSeen")
    assert code == 1 and "Prometheus alert GreenSeen is firing" in out, out
    assert load.failed == []
    assert serving_variants(ferry_url) == {blue}


def test_a_drift_finding_on_greens_traffic_rolls_back(ferry_url, demo_dir, tmp_path):
    train = pd.read_csv(demo_dir / "train.csv")
    baseline_data_quality(pd.DataFrame(model_matrix(train), columns=MODEL_FEATURES), tmp_path / "baseline")
    drifted = model_matrix(train.iloc[:400].assign(income=train["income"].iloc[:400] * 4))
    blue = current(ferry_url)
    url = f"{ferry_url}/endpoints/{EP}/invocations"

    def send_drifted(stop):
        with httpx.Client(timeout=30) as c:
            i = 0
            while not stop():
                c.post(url, content=",".join(repr(float(v)) for v in drifted[i % len(drifted)]),
                       headers={"content-type": "text/csv"})
                i += 1

    import threading
    done = threading.Event()
    sender = threading.Thread(target=send_drifted, args=(done.is_set,), daemon=True)
    sender.start()
    try:
        code, out = rollout(ferry_url, green_file(tmp_path, demo_dir, "DriftGreen"), "--strategy", "canary",
                            "--canary-percent", "50", "--wait-interval", "6",
                            "--drift-baseline", str(tmp_path / "baseline"))
    finally:
        done.set()
        sender.join(30)
    assert code == 1 and "data-quality violations" in out and "income" in out, out
    assert serving_variants(ferry_url) == {blue}


def _bias_rollout(ferry_url, demo_dir, tmp_path, name: str, model: str, *options: str) -> tuple[int, str]:
    """A rollout to `model` while the same 200 applicants are scored again and again (one request each time),
    under a bias alarm whose baseline is blue's predictions on those applicants, facet age > 40."""
    import threading

    import onnxruntime as ort

    rows = model_matrix(pd.read_csv(demo_dir / "test.csv").iloc[:200])
    blue = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": rows})[0]
    frame = pd.DataFrame(rows, columns=MODEL_FEATURES).assign(prediction=blue)
    baseline_bias(frame, tmp_path / "bias", label="prediction", predicted_label="prediction",
                  positive_label_values=[1], facets=[{"name": "age", "threshold": 40}])
    body = "\n".join(",".join(repr(float(v)) for v in r) for r in rows)
    done = threading.Event()

    def send():
        with httpx.Client(timeout=30) as c:
            while not done.is_set():
                c.post(f"{ferry_url}/endpoints/{EP}/invocations", content=body, headers={"content-type": "text/csv"})

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        return rollout(ferry_url, green_file(tmp_path, demo_dir, name, model), "--wait-interval", "4",
                       "--termination-wait", "0",
                       "--bias-baseline", str(tmp_path / "bias"), "--bias-facet", "age>40", *options)
    finally:
        done.set()
        sender.join(30)


def test_a_green_biased_by_age_rolls_back_by_the_bias_alarm(ferry_url, demo_dir, tmp_path):
    blue = current(ferry_url)
    code, out = _bias_rollout(ferry_url, demo_dir, tmp_path, "ByAge", "by-age.onnx", "--strategy", "canary",
                              "--canary-percent", "50", "--input-columns", ",".join(MODEL_FEATURES))  # no metadata
    assert code == 1 and "bias drift" in out and "DPPL of age" in out, out
    assert serving_variants(ferry_url) == {blue}


def test_a_green_as_fair_as_blue_passes_the_bias_alarm(ferry_url, demo_dir, tmp_path):
    """The same model as blue on the same applicants: the metrics equal the baseline's, no alarm (the columns
    are named by the model's feature_names metadata)."""
    judged = ".ferry/control/rollouts/rolling/*/bias/analysis.json"
    before = set(demo_dir.glob(judged))
    code, out = _bias_rollout(ferry_url, demo_dir, tmp_path, "Fair", "model.onnx", "--strategy", "all-at-once")
    assert code == 0, out
    assert set(demo_dir.glob(judged)) - before, "the bias alarm never judged green's window"


def test_a_rollout_survives_a_restart_of_the_control_plane(ferry_url, demo_dir, tmp_path):
    import ray

    name = "AfterRestart"
    with Load(f"{ferry_url}/endpoints/{EP}/invocations") as load:
        r = run([sys.executable, "-m", "ferry.cli", "rollout", EP, "--to", green_file(tmp_path, demo_dir, name),
                 "--url", ferry_url, "--strategy", "canary", "--canary-percent", "20", "--wait-interval", "6",
                 "--termination-wait", "1", "--no-wait"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        time.sleep(2)
        control = next(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                       if "ferry#control#" in a["name"])
        ray.kill(ray.get_actor(control, namespace="serve"), no_restart=False)  # Ray Serve starts a new replica
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                doc = httpx.get(f"{ferry_url}/control/endpoints/{EP}/rollout", timeout=10).json()["rollout"]
                if doc["status"] != "running":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
    assert doc["status"] == "completed", doc
    assert load.failed == [], load.failed[:3]
    assert serving_variants(ferry_url) == {name}


def test_a_shadow_is_promoted_through_a_rollout(ferry_url, demo_dir, tmp_path):
    """`ferry shadow promote`: the shadow's model becomes the production variant, under load, no request failed."""
    ep = "shadowed"
    doc = {"models": [{"name": "credit-gbm", "path": str(demo_dir / "model.onnx")}],
           "endpoints": [{"name": ep, "variants": [{"model": "credit-gbm"}],
                          "shadow_variants": [{"name": "Same", "model": "credit-gbm"}]}]}
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(doc))
    url = f"{ferry_url}/endpoints/{ep}/invocations"
    with Load(url) as load:
        r = run([sys.executable, "-m", "ferry.cli", "shadow", "promote", ep, "Same", "-f", str(tmp_path / "ferry.yaml"),
                 "--url", ferry_url, "--strategy", "all-at-once", "--wait-interval", "2", "--termination-wait", "1"],
                capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert load.failed == [] and load.variants.get("Same", 0) > 0, (load.failed[:3], load.variants)
    assert httpx.get(f"{ferry_url}/control/traffic").json()["endpoints"][ep]["weights"] == {"Same": 1.0}
    with httpx.Client(timeout=30) as c:
        assert {c.post(url, content=ROW, headers={"content-type": "text/csv"}).headers[
            "x-amzn-invoked-production-variant"] for _ in range(20)} == {"Same"}
    unknown = run([sys.executable, "-m", "ferry.cli", "shadow", "promote", ep, "Nope", "-f", str(tmp_path / "ferry.yaml"),
                   "--url", ferry_url], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "no shadow 'Nope'" in unknown.stderr, unknown.stderr


def test_readme_live_traffic_examples_run_on_the_demo(ferry_url, demo_dir, tmp_path):
    """The README's runnable weights, shadow and rollout blocks, in order, against the session's demo: A and B
    both answer after the weight change, the shadow report shows Challenger, the promotion completes with no
    failed request and Challenger alone answers."""
    blocks = [b for b in runnable_blocks(DOCS[0]) if AB_ENDPOINT in b.text]
    text = "\n".join(b.text for b in blocks)
    for example in ("ferry weights", "ferry shadow report", "ferry shadow promote"):
        assert example in text, f"README.md lacks a runnable `{example}` on {AB_ENDPOINT}"
    outs = [run_block(b, ferry_url, demo_dir, tmp_path) for b in blocks]
    served = {ln.split()[-1]: int(ln.split()[0]) for ln in outs[0].splitlines() if "invoked-production-variant" in ln}
    assert set(served) == {"A", "B"} and sum(served.values()) == 40, outs[0]
    assert "Challenger" in outs[0] and "(production)" in outs[0], outs[0]
    assert "failed request" not in outs[-1], outs[-1]
    assert '"status":"completed"' in outs[-1].replace(" ", ""), outs[-1]
    assert httpx.get(f"{ferry_url}/control/traffic").json()["endpoints"][AB_ENDPOINT]["weights"] == {"Challenger": 1.0}
    import ray

    status = run([sys.executable, "-m", "ferry.cli", "status", "--address", ray.get_runtime_context().gcs_address],
                 capture_output=True, text=True, timeout=120)  # the live weights and the rollout's outcome
    assert status.returncode == 0, status.stderr
    assert f"rollout {AB_ENDPOINT}: canary to ['Challenger'], completed" in status.stdout, status.stdout
    assert any(AB_ENDPOINT in ln and "Challenger" in ln for ln in status.stdout.splitlines()), status.stdout


def test_a_green_pipeline_and_a_green_on_its_own_deployment(ferry_url, demo_dir, tmp_path, grpc_port):
    """A green fleet of a pipeline (its model step on its own deployment, its decision step in the gateway) and
    of a model on its own deployment: each deployment is an application of its own (no route prefix) while its
    variant lives. The rollout completes under load with no failed request, both answer, the pipeline equals
    its steps by hand, gRPC clients still need no application name; a green that cannot be built is a 400 at
    the control API; the rollout back to a model in the gateway removes the green applications. Last in this
    file: it leaves a two-variant blue until its last rollout."""
    import grpc
    import onnxruntime as ort
    from ray import serve

    from ferry.demo_steps import Decide
    from serving.protos import inference_pb2 as pb
    from serving.protos import inference_pb2_grpc as pb_grpc

    model = {"name": "green-model", "path": str(demo_dir / "model.onnx")}
    pipe = [{"name": "model", "model": "green-model", "in_process": False},
            {"name": "decide", "python": "credit_steps:Decide", "path": str(demo_dir)}]
    (tmp_path / "green.yaml").write_text(yaml.safe_dump({"models": [model], "endpoints": [{"name": EP, "variants": [
        {"name": "G-pipe", "pipeline": pipe}, {"name": "G-own", "model": "green-model", "in_process": False}]}]}))
    url = f"{ferry_url}/endpoints/{EP}/invocations"
    with Load(url) as load:
        code, out = rollout(ferry_url, str(tmp_path / "green.yaml"), "--strategy", "all-at-once",
                            "--wait-interval", "2", "--termination-wait", "1")
    assert code == 0, out
    assert load.failed == [] and load.variants["G-pipe"] > 0 and load.variants["G-own"] > 0, (load.failed[:3],
                                                                                             load.variants)
    assert serving_variants(ferry_url) == {"G-pipe", "G-own"}
    apps = serve.status().applications
    assert apps[f"{EP}.G-pipe.model"].status == "RUNNING" and apps[f"{EP}.G-own"].status == "RUNNING", apps.keys()
    with httpx.Client(timeout=30) as c:
        piped = c.post(url, content=ROW, headers={"content-type": "text/csv",
                                                  "x-amzn-sagemaker-target-variant": "G-pipe"}).text.strip()
    features = np.array([[float(v) for v in ROW.split(",")]], dtype=np.float32)
    label, proba = ort.InferenceSession(str(demo_dir / "model.onnx")).run(None, {"input": features})
    by_hand = Decide()({"label": label, "probabilities": proba})
    assert piped.split(",")[0] == str(label[0]) and piped.split(",")[-1] == by_hand["decision"][0], piped
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:  # three applications: no metadata needed
        assert pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=30).live

    bad = {"variant": {"pipeline": [{"python": "no_such_module:f"}, {"model": "green-model"}]},
           "models": {"green-model": model}}
    r = httpx.post(f"{ferry_url}/control/endpoints/{EP}/rollouts", json={"green": {"Bad": bad},
                                                                         "strategy": "all-at-once"}, timeout=60)
    assert r.status_code == 400 and "cannot be built" in r.json()["error"], r.text
    r = httpx.post(f"{ferry_url}/control/endpoints/{EP}/rollouts", json={"green": {"Bad": {**bad, "models": {}}},
                                                                         "strategy": "all-at-once"}, timeout=60)
    assert r.status_code == 400 and "green-model" in r.json()["error"], r.text

    code, out = rollout(ferry_url, green_file(tmp_path, demo_dir, "Back"), "--strategy", "all-at-once",
                        "--wait-interval", "1", "--termination-wait", "0")
    assert code == 0, out
    assert serving_variants(ferry_url) == {"Back"}
    deadline = time.monotonic() + 60
    while {f"{EP}.G-pipe.model", f"{EP}.G-own"} & set(serve.status().applications) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not {f"{EP}.G-pipe.model", f"{EP}.G-own"} & set(serve.status().applications)
