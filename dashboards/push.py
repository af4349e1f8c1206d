"""Upload Ferry's dashboards and alert rules to a Grafana server through its HTTP API, with grafana-client.

grafana-client, the maintained fork of grafana-api: grafana-api (1.0.3, 2020) predates Grafana's alerting
provisioning API (/api/v1/provisioning/..., Grafana 9) and has no call for alert rules; grafana-client has
`alertingprovisioning.update_rule_group` beside the folder and dashboard calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dashboards import alerting, build

log = logging.getLogger(__name__)


@dataclass
class Pushed:
    folder_uid: str
    dashboards: list[str]
    rule_groups: list[str]


def push(url: str, token: str | None, datasource_uid: str = alerting.DATASOURCE_UID,
         timeout_s: float = 30.0) -> Pushed:
    """Make the Ferry folder if it is missing, then create or overwrite every dashboard and every alert rule
    group in it (rules without provenance, so they stay editable in Grafana's UI)."""
    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaClientError

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_s)
    try:
        api.folder.get_folder(alerting.FOLDER_UID)
    except GrafanaClientError as e:
        if e.status_code != 404:
            raise
        api.folder.create_folder(alerting.FOLDER_TITLE, uid=alerting.FOLDER_UID)
        log.info("created folder %s", alerting.FOLDER_TITLE)
    uids = []
    for uid in build.BOARDS:
        api.dashboard.update_dashboard({"dashboard": build.dashboard_json(uid), "folderUid": alerting.FOLDER_UID,
                                        "overwrite": True, "message": "ferry dashboards push"})
        uids.append(uid)
    groups = []
    for group in alerting.rule_groups(datasource_uid):
        api.alertingprovisioning.update_rule_group(alerting.FOLDER_UID, group["title"], group,
                                                   disable_provenance=True)
        groups.append(group["title"])
    return Pushed(alerting.FOLDER_UID, uids, groups)
