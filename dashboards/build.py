"""Write the dashboards' JSON (dashboards/grafana/*.json) from their code:  python -m dashboards.build

tests/unit/test_dashboards.py fails while the committed JSON differs from what the code builds; the chart takes
copies (python helm/sync.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import async_rollouts, feature_store, model_monitor, overview

GRAFANA = Path(__file__).resolve().parent / "grafana"
BOARDS = {m.UID: m.dashboard for m in (overview, model_monitor, feature_store, async_rollouts)}


def dashboard_json(uid: str) -> dict:
    """One dashboard as Grafana's JSON model, panels numbered in order."""
    doc = json.loads(json.dumps(BOARDS[uid]().build(), cls=JSONEncoder))
    for i, panel in enumerate(doc["panels"], start=1):
        panel["id"] = i
    return doc


def rendered() -> dict[Path, str]:
    """Every dashboard file with the text it should have."""
    return {GRAFANA / f"{uid}.json": json.dumps(dashboard_json(uid), indent=2, sort_keys=True) + "\n"
            for uid in BOARDS}


def stale() -> list[str]:
    """Dashboard files that differ from the code (empty when up to date)."""
    want = rendered()
    out = [p.name for p, text in want.items() if not p.is_file() or p.read_text() != text]
    return out + [p.name for p in GRAFANA.glob("*.json") if p not in want]


def main() -> int:
    GRAFANA.mkdir(exist_ok=True)
    for p in GRAFANA.glob("*.json"):
        p.unlink()
    for path, text in rendered().items():
        path.write_text(text)
    print(f"{len(BOARDS)} dashboards written to {GRAFANA}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
