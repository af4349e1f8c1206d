"""Bring the chart's derived files up to date with the repository:  python helm/sync.py

- helm/ferry/values.schema.json `$defs`: ferry.yaml's schema (ferry.config.DeployFile), so that `helm install`
  rejects a ferry.yaml mistake (unknown key, wrong type) naming the field. The chart's own values are described
  by hand in the rest of that file.
- helm/ferry/files/alerts/: the Prometheus rule files of dashboards/alerts/ (documents with `groups`; promtool
  test files stay behind), rendered as the PrometheusRule.
- helm/ferry/files/dashboards/: the Grafana dashboards of dashboards/grafana/*.json, rendered as ConfigMaps.

Helm reads nothing outside the chart's folder, hence the copies. tests/unit/test_helm_sync.py fails while any of
them is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "ferry"
SCHEMA = CHART / "values.schema.json"
COPIES = {  # chart folder -> (repository folder, glob)
    CHART / "files" / "alerts": (ROOT / "dashboards" / "alerts", "*.y*ml"),
    CHART / "files" / "dashboards": (ROOT / "dashboards" / "grafana", "*.json"),
}


def deploy_file_defs() -> dict:
    """The pydantic JSON schema of ferry.yaml as `$defs`, the whole file under `DeployFile`."""
    from ferry.config import DeployFile

    schema = DeployFile.model_json_schema()
    defs = schema.pop("$defs")
    return {**defs, "DeployFile": schema}


def _is_rule_file(path: Path) -> bool:
    doc = yaml.safe_load(path.read_text())
    return isinstance(doc, dict) and "groups" in doc


def wanted() -> dict[Path, str]:
    """Every derived file with the content it should have."""
    out = {SCHEMA: json.dumps({**json.loads(SCHEMA.read_text()), "$defs": deploy_file_defs()}, indent=2) + "\n"}
    for dest, (src, pattern) in COPIES.items():
        for f in sorted(src.glob(pattern)) if src.is_dir() else []:
            if dest.name != "alerts" or _is_rule_file(f):
                out[dest / f.name] = f.read_text()
    return out


def stale() -> list[str]:
    """What `python helm/sync.py` would change (empty when the chart is up to date)."""
    want = wanted()
    out = [str(p.relative_to(ROOT)) for p, text in want.items() if not p.is_file() or p.read_text() != text]
    for dest in COPIES:
        out += [str(p.relative_to(ROOT)) for p in sorted(dest.glob("*")) if p.name != "README.md" and p not in want]
    return out


def main() -> int:
    want = wanted()
    for dest in COPIES:
        for p in dest.glob("*"):
            if p.name != "README.md" and p not in want:
                p.unlink()
    for path, text in want.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"chart files up to date: {len(want)} written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
