"""A static HTML preview of the dashboards, every panel drawn (plotly) from a Prometheus server's answers to
its own queries, laid out on Grafana's 24-column grid; and a screenshot of it in headless Chromium.

Grafana's variables are given values first (`$endpoint` and the other label variables: `.*` unless set;
`$__rate_interval` and `$__range` from the options). A panel whose queries return no series is drawn as
"No data" and reported: `ferry dashboards preview` fails on it.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from dashboards import build

ROW_PX = 30  # Grafana's grid row height
GAP_PX = 6
WIDTH_PX = 1600
UNITS = {"percentunit": {"tickformat": ".1%"}, "s": {"ticksuffix": " s"}, "reqps": {"ticksuffix": " req/s"},
         "ops": {"ticksuffix": " /s"}}


@dataclass
class PanelResult:
    title: str
    series: int
    html: str


@dataclass
class Preview:
    uid: str
    title: str
    path: Path
    panels: list[PanelResult] = field(default_factory=list)
    height_px: int = 0

    @property
    def empty(self) -> list[str]:
        return [p.title for p in self.panels if p.series == 0]


def substitute(expr: str, variables: dict[str, str], rate_interval: str, range_: str) -> str:
    """The query as Grafana sends it to Prometheus once its variables have values."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__range", range_)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1), ".*"), expr)


def legend(fmt: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or str(labels)


class PrometheusClient:
    def __init__(self, url: str, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=timeout_s)

    def _get(self, path: str, params: dict) -> list[dict]:
        r = self.http.get(f"{self.url}{path}", params=params)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code != 200 or body.get("status") != "success":
            raise ValueError(f"Prometheus refused {params.get('query')!r}: {body.get('error', r.text[:200])}")
        return body["data"]["result"]

    def range(self, query: str, start: float, end: float, step_s: float) -> list[dict]:
        return self._get("/api/v1/query_range", {"query": query, "start": start, "end": end, "step": step_s})

    def instant(self, query: str, at: float) -> list[dict]:
        return self._get("/api/v1/query", {"query": query, "time": at})


def _figure(panel: dict, results: list[tuple[str, list[dict]]]):
    import plotly.graph_objects as go

    fig = go.Figure()
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    if panel["type"] == "stat":
        names = [name for name, _ in results]
        values = [float(r["value"][1]) for _, rs in results for r in rs]
        fig.add_trace(go.Bar(x=values, y=names, orientation="h", text=[f"{v:.4g}" for v in values],
                             textposition="auto"))
        fig.update_xaxes(**UNITS.get(unit, {}))
        fig.update_layout(showlegend=False)
    else:
        for name, rs in results:
            for r in rs:
                xs = [datetime.fromtimestamp(float(t)) for t, _ in r["values"]]
                fig.add_trace(go.Scatter(x=xs, y=[float(v) for _, v in r["values"]], mode="lines", name=name))
        fig.update_yaxes(**UNITS.get(unit, {}))
    height = panel["gridPos"]["h"] * ROW_PX - 30
    fig.update_layout(height=height, margin={"l": 50, "r": 10, "t": 10, "b": 30}, template="plotly_dark",
                      legend={"font": {"size": 9}}, paper_bgcolor="#181b1f", plot_bgcolor="#181b1f")
    return fig


def render_dashboard(prom: PrometheusClient, uid: str, out_dir: Path, minutes: float = 30,
                     rate_interval: str = "1m", variables: dict[str, str] | None = None) -> Preview:
    """Query every panel of one dashboard and write `<uid>.html`."""
    doc = build.dashboard_json(uid)
    end = time.time()
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 240)
    range_ = f"{int(minutes * 60)}s"
    preview = Preview(uid, doc["title"], out_dir / f"{uid}.html")
    cells = []
    bottom = 0
    for panel in doc["panels"]:
        g = panel["gridPos"]
        bottom = max(bottom, g["y"] + g["h"])
        style = f"grid-column:{g['x'] + 1}/span {g['w']};grid-row:{g['y'] + 1}/span {g['h']}"
        if panel["type"] == "row":
            cells.append(f'<div class="row" style="{style}">{html.escape(panel["title"])}</div>')
            continue
        results = []
        for t in panel["targets"]:
            q = substitute(t["expr"], variables or {}, rate_interval, range_)
            rs = prom.instant(q, end) if t.get("instant") else prom.range(q, start, end, step)
            for r in rs:
                results.append((legend(t.get("legendFormat", ""), r["metric"]), [r]))
        n = len(results)
        if n:
            import plotly.io as pio

            body = pio.to_html(_figure(panel, results), full_html=False, include_plotlyjs=False,
                               config={"displayModeBar": False, "staticPlot": True})
        else:
            body = '<div class="nodata">No data</div>'
        preview.panels.append(PanelResult(panel["title"], n, body))
        cells.append(f'<div class="panel{"" if n else " empty"}" style="{style}"><div class="title">'
                     f'{html.escape(panel["title"])}</div>{body}</div>')
    preview.height_px = bottom * (ROW_PX + GAP_PX) + 90
    _write_page(preview, cells, prom.url, minutes)
    return preview


def _write_page(preview: Preview, cells: list[str], source: str, minutes: float) -> None:
    from plotly.offline import get_plotlyjs

    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(preview.title)}</title>
<script>{get_plotlyjs()}</script>
<style>
body {{ background:#111217; color:#ccccdc; font-family:Inter,Helvetica,Arial,sans-serif; margin:12px; }}
h1 {{ font-size:18px; font-weight:500; margin:4px 0 10px; }} h1 small {{ color:#8e8e8e; font-size:12px; }}
.grid {{ display:grid; grid-template-columns:repeat(24,1fr); grid-auto-rows:{ROW_PX}px; gap:{GAP_PX}px; }}
.panel {{ background:#181b1f; border:1px solid #2c3235; border-radius:3px; overflow:hidden; }}
.panel.empty {{ border-color:#d44a3a; }}
.title {{ font-size:12px; font-weight:500; padding:4px 8px; height:18px; }}
.row {{ font-size:15px; font-weight:500; padding-top:8px; border-bottom:1px solid #2c3235; }}
.nodata {{ color:#d44a3a; text-align:center; padding-top:40px; }}
</style></head><body>
<h1>{html.escape(preview.title)} <small>from {html.escape(source)}, last {minutes:g} min</small></h1>
<div class="grid">{''.join(cells)}</div></body></html>"""
    preview.path.parent.mkdir(parents=True, exist_ok=True)
    preview.path.write_text(page)


def screenshot(page: Path, png: Path, height_px: int, chromium: str | None = None, timeout_s: float = 120) -> Path:
    """A PNG of the page as headless Chromium draws it (Debian's chromium; flags that work offline)."""
    binary = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ferry-chromium-") as profile:
        cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WIDTH_PX},{height_px}",
               "--virtual-time-budget=15000", f"--screenshot={png}", page.resolve().as_uri()]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if out.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium could not screenshot {page}: {out.stderr[-1000:]}")
    return png


def render(prometheus_url: str, out_dir: Path, uids: list[str] | None = None, minutes: float = 30,
           rate_interval: str = "1m", variables: dict[str, str] | None = None,
           screenshots: bool = False) -> list[Preview]:
    """Render the dashboards (all by default); with `screenshots`, a PNG beside each HTML page."""
    prom = PrometheusClient(prometheus_url)
    unknown = sorted(set(uids or ()) - set(build.BOARDS))
    if unknown:
        raise ValueError(f"unknown dashboards {unknown}: choose from {sorted(build.BOARDS)}")
    out = []
    for uid in uids or list(build.BOARDS):
        p = render_dashboard(prom, uid, out_dir, minutes, rate_interval, variables)
        if screenshots:
            screenshot(p.path, p.path.with_suffix(".png"), p.height_px)
        out.append(p)
    return out
