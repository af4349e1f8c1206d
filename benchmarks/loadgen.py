"""Load from wrk (HTTP) and ghz (gRPC): native load generators, so the client costs little of the 2 cores."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def require_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is needed for the HTTP benchmarks: apt-get install -y wrk")
    return path


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * UNITS[m.group(2)]


def wrk(url: str, body: str, content_type: str, concurrency: int, seconds: float,
        headers: dict[str, str] | None = None) -> dict:
    """POST `body` at `url` with `concurrency` connections for `seconds`; p50/p99 ms, req/s, errors."""
    script = "wrk.method = 'POST'\nwrk.body = [[%s]]\nwrk.headers['Content-Type'] = '%s'\n" % (body, content_type)
    for k, v in (headers or {}).items():
        script += f"wrk.headers['{k}'] = '{v}'\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run([require_wrk(), "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--latency",
                              "--timeout", "10s", "-s", f.name, url],
                             capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        Path(f.name).unlink()
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "concurrency": concurrency,
        "p50_ms": _ms(p50.group(1)) if p50 else None,
        "p99_ms": _ms(p99.group(1)) if p99 else None,
        "rps": float(rps.group(1)) if rps else 0.0,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def require_ghz() -> str:
    path = shutil.which("ghz") or str(Path.home() / "go" / "bin" / "ghz")
    if not Path(path).exists():
        raise SystemExit("ghz is needed for the gRPC benchmarks: go install github.com/bojand/ghz/cmd/ghz@latest")
    return path


def ghz(target: str, proto: str, call: str, data: dict, concurrency: int, seconds: float,
        metadata: dict[str, str] | None = None) -> dict:
    """Unary gRPC load from ghz (Go); p50/p99 ms, req/s, non-OK count."""
    args = [require_ghz(), "--insecure", "--proto", proto, "--call", call, "-d", json.dumps(data),
            "-c", str(concurrency), "-z", f"{max(1, round(seconds))}s", "--format", "json", "--connections", "1"]
    if metadata:
        args += ["-m", json.dumps(metadata)]
    out = subprocess.run(args + [target], capture_output=True, text=True, timeout=seconds + 60).stdout
    doc = json.loads(out)
    dist = {d["percentage"]: d["latency"] / 1e6 for d in doc.get("latencyDistribution") or []}
    errors = doc.get("errorDistribution") or {}
    return {"concurrency": concurrency, "p50_ms": dist.get(50), "p99_ms": dist.get(99), "rps": doc.get("rps", 0.0),
            # calls in flight when -z ends fail with "transport is closing": ghz's own shutdown, not the server
            "non_2xx": sum(v for k, v in errors.items() if "transport is closing" not in k and "Canceled" not in k),
            "errors": errors}
