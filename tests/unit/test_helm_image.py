"""The container image recipe (Dockerfile): this machine has no Docker engine, so its content is checked, and
the package it installs is built into a wheel from the build context that .dockerignore leaves."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

from serving.spec import ServerSpec
from tests.helm import CHART, ROOT


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def _one(op: str) -> str:
    (arg,) = [a for o, a in instructions() if o == op]
    return arg


def test_base_image_is_pinned_python_slim():
    base = _one("FROM")
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    py = tuple(int(x) for x in base.split(":")[1].split("-")[0].split(".")[:2])
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert py >= tuple(int(x) for x in requires.removeprefix(">=").split("."))


def test_ray_in_the_image_is_the_chart_ray_version():
    ray_version = yaml.safe_load((CHART / "values.yaml").read_text())["ray"]["version"]
    assert _one("ARG") == f"RAY_VERSION={ray_version}"
    (install,) = [a for o, a in instructions() if o == "RUN" and "pip install" in a]
    assert '"ray[serve]==${RAY_VERSION}"' in install and '"."' in install


def test_the_c_compiler_is_installed_for_the_install_step_and_purged_in_it():
    """pip install compiles clarify/bias/_knn.c; the image keeps no compiler."""
    (install,) = [a for o, a in instructions() if o == "RUN" and "pip install" in a]
    assert install.index("apt-get install") < install.index("pip install") < install.index("apt-get purge")
    assert "gcc" in install.split("apt-get purge")[1]


def test_runs_as_the_chart_non_root_user_after_installing():
    ops = instructions()
    users = [i for i, (o, _) in enumerate(ops) if o == "USER"]
    assert users and ops[users[-1]][1] == "1000:1000"
    pod = yaml.safe_load((CHART / "values.yaml").read_text())["podSecurityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (1000, 1000)
    last_run = max(i for i, (o, _) in enumerate(ops) if o == "RUN")
    assert users[-1] > last_run, "USER must come after every RUN that needs root"


def test_exposes_ferry_and_ray_ports():
    exposed = {int(p) for p in _one("EXPOSE").split()}
    server = ServerSpec()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert {server.http_port, server.grpc_port} <= exposed
    assert {6379, 8265, 10001, 52365, values["ray"]["metricsExportPort"], values["monitor"]["metricsPort"],
            values["ingest"]["metricsPort"]} <= exposed


def test_healthcheck_pings_ferry():
    check = _one("HEALTHCHECK")
    assert f"127.0.0.1:{ServerSpec().http_port}/ping" in check
    assert _one("CMD") == '["ferry", "up", "-f", "/srv/ferry/ferry.yaml"]'


def _packages() -> set[str]:
    """Top-level import packages that pyproject's setuptools find includes."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    return {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()
            and any(fnmatch.fnmatch(p.name, pat) for pat in patterns)}


def test_copies_every_package():
    copied = {src for o, a in instructions() if o == "COPY" for src in a.split()[:-1]}
    assert _packages() | {"pyproject.toml", "setup.py", "README.md"} <= copied


def _build_context(dest: Path) -> Path:
    """The files `docker build .` sends: the repository less what .dockerignore names."""
    ignore = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]

    def ignored(rel: str) -> bool:
        return any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat.removeprefix("**/"))
                   or fnmatch.fnmatch(Path(rel).name, pat.removeprefix("**/")) for pat in ignore)

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in tracked.split():
        parts = Path(rel).parts
        if any(ignored("/".join(parts[:i + 1])) for i in range(len(parts))) or not (ROOT / rel).is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    return dest


def test_the_build_context_makes_a_wheel_with_every_module_and_data_file(tmp_path):
    """What the image's `pip install .` installs: every module and data file of the packages, none left out by
    .dockerignore or the package data globs (a missing .proto breaks gRPC only in the image)."""
    ctx = _build_context(tmp_path / "ctx")
    assert not (ctx / "tests").exists() and (ctx / "README.md").is_file()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel"), str(ctx)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "wheel").glob("ferry-*.whl")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", *_packages()], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    wanted = {rel for rel in tracked if Path(rel).suffix in (".py", ".proto", ".json", ".html", ".lua")}
    assert wanted and not wanted - in_wheel, sorted(wanted - in_wheel)
    assert any(n.startswith("clarify/bias/_knn.") and n.endswith(".so") for n in in_wheel)  # the compiled kernel
