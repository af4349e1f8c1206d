"""Session fixtures on real servers: Ray Serve (started once) with Ferry deployed on it."""

from __future__ import annotations

import os
import socket

import pytest

from ferry.config import parse_config
import pandas as pd

from ferry.demo import LOOKUP_ENDPOINT, MODEL_FEATURES, PIPELINE_ENDPOINT, demo_config, model_matrix, write_demo
from monitor.jobs import baseline_data_quality
from tests.models import facet_model, fragile_model, identity_model, multi_dtype_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPLICA_PORT_BASE = 21000 + 1000 * (os.getpid() % 8)  # apart from any other Ray Serve on this machine


@pytest.fixture(scope="session")
def grpc_port():
    return free_port()


@pytest.fixture(scope="session")
def ray_serve(grpc_port):
    """Ray and Ray Serve as `ferry up` starts them (the default ingress, HTTP and the V2 gRPC service), once
    per test session; yields the HTTP port."""
    import ray
    from ray import serve

    from serving.deploy import start_ray
    from serving.spec import ServerSpec

    port = free_port()
    start_ray(ServerSpec(http_port=port, grpc_port=grpc_port, haproxy_stats_port=free_port(),
                         haproxy_metrics_port=free_port(), fallback_http_port=free_port(),
                         fallback_grpc_port=free_port(), replica_port_base=REPLICA_PORT_BASE, ray_num_cpus=8))
    yield port
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    write_demo(out)
    (out / "multi.onnx").write_bytes(multi_dtype_model())
    (out / "fragile.onnx").write_bytes(fragile_model())
    (out / "fragile8.onnx").write_bytes(fragile_model(8))  # the demo's width: fails in onnxruntime on one row
    (out / "big.onnx").write_bytes(identity_model())
    (out / "by-age.onnx").write_bytes(facet_model())  # approves by age alone: biased
    return out


MAX_PAYLOAD = 1_000_000


@pytest.fixture(scope="session")
def ferry_url(ray_serve, demo_dir):
    """Ferry deployed with the demo endpoints, an A/B endpoint, a batched one and test models; the demo's
    pipelines get a second variant, `Deployed`, with steps on their own replicas."""
    from ferry.app import serve_config
    from serving.deploy import deploy_config

    doc = demo_config()
    doc["server"].update(http_port=ray_serve, max_payload_bytes=MAX_PAYLOAD)
    doc["endpoints"][0]["variants"].append({"name": "Deployed", "model": "credit-gbm", "initial_weight": 0,
                                            "in_process": False})
    doc["endpoints"][0]["data_capture"] = {"enabled": True, "sampling_percentage": 100,
                                           "destination": str(demo_dir / "capture")}
    doc["models"] += [{"name": "multi", "path": "multi.onnx"}, {"name": "fragile", "path": "fragile.onnx"},
                      {"name": "big", "path": "big.onnx"}]
    doc["endpoints"] += [
        {"name": "ab-test", "variants": [
            {"name": "A", "model": "credit-gbm", "initial_weight": 3},
            {"name": "B", "model": "credit-gbm", "initial_weight": 1}]},
        {"name": "batched", "variants": [
            {"model": "credit-gbm", "batching": {"max_batch_size": 16, "batch_wait_timeout_ms": 5}}]},
        {"name": "batched-deployed", "variants": [
            {"model": "credit-gbm", "in_process": False, "batching": {"max_batch_size": 16, "batch_wait_timeout_ms": 5}}]},
        {"name": "multi", "variants": [{"model": "multi"}]},
        {"name": "big", "variants": [{"model": "big", "in_process": True}]},
        {"name": "scale-to-zero", "variants": [{"model": "credit-gbm", "autoscaling": {
            "min_replicas": 0, "initial_replicas": 0, "max_replicas": 1, "upscale_delay_s": 0,
            "downscale_delay_s": 600}}]},
        {"name": "fragile", "variants": [{"model": "fragile"}]},
        {"name": "serverless", "variants": [{"model": "credit-gbm", "serverless": {
            "memory_mb": 256, "max_concurrency": 2, "idle_timeout_s": 2, "startup_timeout_s": 120}}]},
        {"name": "serverless-not-ready", "variants": [{"model": "credit-gbm", "serverless": {
            "memory_mb": 256, "max_concurrency": 4, "idle_timeout_s": 600, "startup_timeout_s": 0.05}}]},
        {"name": "async", "variants": [{"model": "credit-gbm"}], "async": {
            "output_path": "async-out", "input_prefixes": ["async-in"], "queue_path": "async-queue.db",
            "max_concurrent_invocations": 2}},
        # docs/endpoints.md's example additions to the demo (its runnable blocks call them)
        {"name": "credit-risk-serverless", "variants": [{"model": "credit-gbm", "serverless": {
            "memory_mb": 512, "max_concurrency": 4, "idle_timeout_s": 60}}]},
        {"name": "credit-risk-async", "variants": [{"model": "credit-gbm"}], "async": {
            "output_path": "./async-out", "input_prefixes": ["./async-in"],
            "scaling": {"min_instances": 0, "max_instances": 2, "idle_s": 60}}},
        {"name": "async-zero", "variants": [{"model": "credit-gbm"}], "async": {
            "output_path": "async-zero-out", "input_prefixes": ["async-in"], "queue_path": "async-queue.db",
            "max_concurrent_invocations": 1, "scaling": {"min_instances": 0, "max_instances": 2,
                                                         "target_backlog_per_instance": 2, "idle_s": 2,
                                                         "poll_interval_s": 0.25}}},
        {"name": "rolling", "variants": [{"name": "Blue", "model": "credit-gbm"}],
         "data_capture": {"enabled": True, "sampling_percentage": 100, "destination": str(demo_dir / "rolling-capture")}},
        {"name": "shadowed", "variants": [{"model": "credit-gbm"}], "shadow_variants": [
            {"name": "Same", "model": "credit-gbm"}, {"name": "Broken", "model": "fragile", "sampling_percentage": 50},
            {"name": "Deployed", "model": "credit-gbm", "in_process": False}],
         "data_capture": {"enabled": True, "sampling_percentage": 100, "destination": str(demo_dir / "shadow-capture")}},
    ]
    for ep in doc["endpoints"]:  # the demo's pipelines again, some steps on their own replicas
        remote = {PIPELINE_ENDPOINT: ("encode", "model"), LOOKUP_ENDPOINT: ("lookup",)}.get(ep["name"], ())
        if remote:
            steps = [dict(s, in_process=False) if s["name"] in remote else s for s in ep["variants"][0]["pipeline"]]
            ep["variants"].append({"name": "Deployed", "initial_weight": 0, "pipeline": steps})
    doc["server"]["ground_truth_dir"] = "ground-truth"
    doc["monitoring_schedules"] = [{
        "name": "dq-every-3s", "endpoint": "credit-risk", "monitor_type": "data_quality", "interval_s": 3,
        "window_start_offset_s": 600, "baseline": "dq-baseline", "capture": "capture", "output": "monitoring"}]
    train = pd.read_csv(demo_dir / "train.csv")
    baseline_data_quality(pd.DataFrame(model_matrix(train), columns=MODEL_FEATURES), demo_dir / "dq-baseline")
    cfg = parse_config(doc, base=demo_dir, environ={})
    deploy_config(serve_config(doc, str(demo_dir), cfg), timeout_s=240)  # as `ferry up` and `serve deploy` do
    return f"http://127.0.0.1:{ray_serve}"
