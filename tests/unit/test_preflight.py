"""Issue 10 item 4: a missing or broken model and a port already in use are found before Ray starts,
and said in one paragraph without a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import yaml

from ferry.demo import demo_config, make_credit_data, train_model
from ferry.preflight import check_models, check_ports, port_holder, port_in_use
from serving.spec import ModelSpec, ServerSpec

FERRY = [sys.executable, "-m", "ferry.cli"]


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return train_model(make_credit_data(300, seed=1))


def test_models_that_load_pass_and_each_problem_is_named(tmp_path, model_bytes):
    good = tmp_path / "good.onnx"
    good.write_bytes(model_bytes)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    assert check_models([ModelSpec(name="good", path=str(good))]) == []
    problems = check_models([
        ModelSpec(name="missing", path=str(tmp_path / "nope.onnx")),
        ModelSpec(name="junk", path=str(tmp_path / "junk.onnx")),
        ModelSpec(name="renamed", path=str(good), input_names=["x"]),
    ])
    assert len(problems) == 3
    assert "model 'missing'" in problems[0] and "nope.onnx does not exist" in problems[0]
    assert "model 'junk'" in problems[1] and "cannot be loaded by onnxruntime" in problems[1]
    assert "model 'renamed'" in problems[2] and "'x'" in problems[2]


def _listener(reuseport: bool) -> socket.socket:
    s = socket.socket()
    if reuseport:  # as Ray Serve's proxy binds: a second bind with SO_REUSEPORT would succeed
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


@pytest.mark.parametrize("reuseport", [False, True])
def test_a_port_in_use_is_found_with_its_process(reuseport):
    with _listener(reuseport) as s:
        port = s.getsockname()[1]
        with _listener(False) as spare:  # a free port for gRPC: the next port up may be another socket's (one CI run)
            grpc_port = spare.getsockname()[1]
        assert port_in_use("127.0.0.1", port) and port_in_use("0.0.0.0", port)
        holder = port_holder(port)
        assert holder is not None and holder.pid == os.getpid() and "python" in holder.command
        (problem,) = check_ports(ServerSpec(http_port=port, grpc_port=grpc_port))
        assert f"port {port} (server.http_port)" in problem and f"process {os.getpid()}" in problem
        assert "FERRY_SERVER__HTTP_PORT" in problem
    assert not port_in_use("127.0.0.1", port)
    assert port_holder(port) is None


def _ferry(args: list[str], cwd, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FERRY_", "RAY_ADDRESS"))}
    return subprocess.run(FERRY + args, capture_output=True, text=True, timeout=120, cwd=cwd, env={**clean, **env})


def test_validate_and_up_fail_early_in_one_paragraph(tmp_path, model_bytes):
    doc = demo_config("missing.onnx", pipelines=False, ab=False)
    doc.pop("feature_groups")
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(doc))
    r = _ferry(["validate"], tmp_path)
    assert r.returncode == 2 and "missing.onnx does not exist" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "missing.onnx").write_bytes(model_bytes)
    assert _ferry(["validate"], tmp_path).returncode == 0
    with _listener(reuseport=True) as s:
        port = s.getsockname()[1]
        started = time.monotonic()
        r = _ferry(["up"], tmp_path, FERRY_SERVER__HTTP_PORT=str(port))
        took = time.monotonic() - started
    assert r.returncode == 2, r.stderr
    assert f"port {port} (server.http_port)" in r.stderr and f"process {os.getpid()}" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert took < 60  # no Ray was started (that alone takes longer on this machine)


def test_an_unexpected_start_failure_is_one_paragraph_and_debug_shows_the_traceback(tmp_path, model_bytes,
                                                                                      monkeypatch):
    from typer.testing import CliRunner

    from ferry.cli import app
    from serving import deploy

    def boom(*_args, **_kwargs):
        raise RuntimeError("the raylet could not start\nmore detail")

    doc = demo_config(pipelines=False, ab=False)
    doc.pop("feature_groups")
    doc["server"].update(http_port=_free(), grpc_port=_free())
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "model.onnx").write_bytes(model_bytes)
    monkeypatch.setattr(deploy, "start_ray", boom)
    runner = CliRunner()
    r = runner.invoke(app, ["up", "-f", str(tmp_path / "ferry.yaml")])
    assert r.exit_code == 1, r.output
    assert "Ferry could not start: RuntimeError: the raylet could not start. Run again with --debug" in r.output
    assert "more detail" not in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["up", "-f", str(tmp_path / "ferry.yaml"), "--debug"])
    assert isinstance(r.exception, RuntimeError) and "raylet" in str(r.exception)


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_up_beyond_loopback_without_a_control_token_is_refused_before_ray_starts(tmp_path, model_bytes):
    doc = demo_config("model.onnx", pipelines=False, ab=False)
    doc.pop("feature_groups")
    (tmp_path / "ferry.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "model.onnx").write_bytes(model_bytes)
    ports = {}
    for field in ("HTTP_PORT", "GRPC_PORT"):
        with _listener(reuseport=False) as s:
            ports[f"FERRY_SERVER__{field}"] = str(s.getsockname()[1])
    r = _ferry(["up"], tmp_path, FERRY_SERVER__HOST="0.0.0.0", **ports)
    assert r.returncode == 2, r.stderr
    assert "exposes the control API beyond loopback" in r.stderr and "FERRY_SERVER__CONTROL_TOKEN" in r.stderr
    assert "Traceback" not in r.stderr
    with pytest.raises(ValueError, match="beyond loopback"):
        ServerSpec(host="0.0.0.0").check_control_exposure()
    ServerSpec(host="0.0.0.0", control_token="c").check_control_exposure()  # a token: allowed
    ServerSpec(host="0.0.0.0", auth_token="t").check_control_exposure()  # the auth token stands in
    ServerSpec().check_control_exposure()  # loopback needs none
