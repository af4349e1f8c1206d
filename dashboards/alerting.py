"""Grafana alert rules for the same alerts as dashboards/alerts/: each Prometheus alerting rule becomes a
Grafana-managed rule (built with grafana-foundation-sdk) whose query is the rule's PromQL, recording rules
inlined so that Grafana needs nothing but a Prometheus data source, and whose condition fires for every series
the query returns, as Prometheus does.

- `rule_groups()`: the groups as Grafana's provisioning API takes them (PUT /api/v1/provisioning/folder/{uid}/
  rule-groups/{group}, used by `ferry dashboards push`).
- `python -m dashboards.alerting` writes dashboards/grafana/alerting/ferry-alerts.yaml, the same rules in
  Grafana's file-provisioning format (contact points and notification policies are left to the user).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml
from grafana_foundation_sdk.builders import alerting, expr, prometheus
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.alerting import RelativeTimeRange

HERE = Path(__file__).resolve().parent
RULES = HERE / "alerts"
PROVISIONING = HERE / "grafana" / "alerting" / "ferry-alerts.yaml"
FOLDER_UID, FOLDER_TITLE = "ferry", "Ferry"
DATASOURCE_UID = "prometheus"  # the Prometheus data source's uid in Grafana; `push --datasource-uid` changes it
# Fires for every series the query returns (the PromQL holds the threshold), as a Prometheus alert does.
FIRES = "is_number($A) || is_nan($A) || is_inf($A)"


def _rule_files() -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted(RULES.glob("*.yml"))]


def _inline(query: str, recorded: dict[str, str]) -> str:
    """The query with each recorded series replaced by its recording rule's expression."""
    for name, definition in recorded.items():
        query = re.sub(rf"(?<![\w:]){re.escape(name)}(?![\w:])", f"({definition})", query)
    return query


def _grafana_template(text: str) -> str:
    """Prometheus's `$value` is Grafana's `$values.A.Value` (the query's refId is A)."""
    return re.sub(r"\$value\b", "$values.A.Value", text)


def _uid(alert: str) -> str:
    return ("ferry-" + re.sub(r"(?<!^)(?=[A-Z])", "-", alert.removeprefix("Ferry")).lower())[:40]


def rule_groups(datasource_uid: str = DATASOURCE_UID) -> list[dict]:
    """Every Prometheus alerting group as a Grafana provisioning-API rule group (JSON)."""
    files = _rule_files()
    recorded = {r["record"]: " ".join(r["expr"].split()) for f in files for g in f["groups"] for r in g["rules"]
                if "record" in r}
    out = []
    for f in files:
        for g in f["groups"]:
            alerts = [r for r in g["rules"] if "alert" in r]
            if not alerts:
                continue
            group = (alerting.RuleGroup(g["name"]).folder_uid(FOLDER_UID).interval(60))
            for r in alerts:
                query = _inline(" ".join(r["expr"].split()), recorded)
                a = (alerting.Query("A").datasource_uid(datasource_uid)
                     .relative_time_range(RelativeTimeRange(from_val=600, to=0))
                     .model(prometheus.Dataquery().expr(query).instant().ref_id("A")))
                b = alerting.Query("B").datasource_uid("__expr__").model(expr.TypeMath().expression(FIRES).ref_id("B"))
                rule = (alerting.Rule(r["alert"]).uid(_uid(r["alert"])).rule_group(g["name"])
                        .folder_uid(FOLDER_UID).org_id(1).condition("B").queries([a, b])
                        .for_val(r.get("for", "0s")).no_data_state("OK").exec_err_state("Error")
                        .labels(dict(r.get("labels", {})))
                        .annotations({k: _grafana_template(v) for k, v in r.get("annotations", {}).items()}))
                group = group.with_rule(rule)
            out.append(json.loads(json.dumps(group.build(), cls=JSONEncoder)))
    return out


def provisioning_file(datasource_uid: str = DATASOURCE_UID) -> str:
    """The rule groups in Grafana's alerting file-provisioning format (YAML)."""
    groups = []
    for g in rule_groups(datasource_uid):
        rules = [{k: v for k, v in r.items() if k not in ("folderUID", "ruleGroup", "orgID")} for r in g["rules"]]
        groups.append({"orgId": 1, "name": g["title"], "folder": FOLDER_TITLE, "interval": "1m", "rules": rules})
    head = ("# Grafana alerting provisioning of Ferry's alerts, made from dashboards/alerts/ by "
            "`python -m dashboards.alerting`.\n# Put it in Grafana's provisioning/alerting/ folder; the data source "
            f"uid is {datasource_uid!r}. Contact points and\n# notification policies are yours to add.\n")
    return head + yaml.safe_dump({"apiVersion": 1, "groups": groups}, sort_keys=False, width=120)


def stale() -> bool:
    return not PROVISIONING.is_file() or PROVISIONING.read_text() != provisioning_file()


def main() -> int:
    PROVISIONING.parent.mkdir(parents=True, exist_ok=True)
    PROVISIONING.write_text(provisioning_file())
    print(f"wrote {PROVISIONING}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
