"""Provision the dashboards (and their folder and data source) through Grafana's HTTP API.

For a Grafana that does not read `deploy/grafana/provisioning` (a shared or hosted one). Uses
grafana-client, the maintained fork of grafana-api. Every object is read first and written only
when it differs, so pushing the same dashboards again creates no new dashboard versions (each
POST /api/dashboards/db would add one to the dashboard's history).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from twin.errors import TwinError
from twin.grafana.dashboards import DashboardSpec, build_all
from twin.grafana.provisioning import FOLDER_TITLE, FOLDER_UID
from twin.grafana.query import DATASOURCE_TYPE, DATASOURCE_UID

__all__ = ["DataSourceTarget", "GrafanaPushFailed", "PushReport", "push"]

_SERVER_FIELDS = ("id", "version")
"""What Grafana adds to a stored dashboard; ignored when comparing with ours."""


class GrafanaPushFailed(TwinError):
    """Raised when Grafana refuses or cannot be reached while provisioning."""


@dataclass(frozen=True, slots=True)
class DataSourceTarget:
    """Where the Grafana server reaches the twin database (as seen from Grafana, not from here)."""

    host: str  # host:port
    database: str
    user: str
    password: str | None = None  # sent only when the data source is created

    @classmethod
    def from_url(cls, database_url: str) -> "DataSourceTarget":
        url = urlsplit(database_url)
        return cls(f"{url.hostname}:{url.port or 5432}", url.path.lstrip("/") or "postgres", url.username or "postgres",
                   url.password)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": "Fleet twin", "uid": DATASOURCE_UID, "type": DATASOURCE_TYPE, "access": "proxy",
            "url": self.host, "user": self.user, "database": self.database, "isDefault": True,
            "jsonData": {"database": self.database, "sslmode": "disable", "postgresVersion": 1500,
                         "timescaledb": False, "timeInterval": "1m"},
        }
        return body


@dataclass(slots=True)
class PushReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _comparable(dashboard: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dashboard.items() if k not in _SERVER_FIELDS}


def _missing(exc: GrafanaException) -> bool:
    return isinstance(exc, GrafanaClientError) and exc.status_code == 404


def push(url: str, token: str, *, dashboards: Iterable[DashboardSpec] | None = None,
         datasource: DataSourceTarget | None = None, timeout: float = 10.0) -> PushReport:
    """Make Grafana at `url` hold our folder, data source (if given) and dashboards; write only what differs."""
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    report = PushReport()
    try:
        try:
            api.folder.get_folder(FOLDER_UID)
            report.unchanged.append(f"folder {FOLDER_UID}")
        except GrafanaException as exc:
            if not _missing(exc):
                raise
            api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
            report.created.append(f"folder {FOLDER_UID}")
        if datasource is not None:
            _push_datasource(api, datasource, report)
        for spec in dashboards if dashboards is not None else build_all():
            _push_dashboard(api, spec, report)
    except GrafanaException as exc:
        raise GrafanaPushFailed(f"Grafana at {url} refused: {exc}") from exc
    except OSError as exc:  # niquests' connection errors (refused, DNS, TLS) are OSErrors
        raise GrafanaPushFailed(f"cannot reach Grafana at {url}: {exc}") from exc
    return report


def _push_datasource(api: GrafanaApi, target: DataSourceTarget, report: PushReport) -> None:
    body = target.body()
    name = f"datasource {DATASOURCE_UID}"
    try:
        current = api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except GrafanaException as exc:
        if not _missing(exc):
            raise
        if target.password:
            body["secureJsonData"] = {"password": target.password}
        api.datasource.create_datasource(body)
        report.created.append(name)
        return
    if all(current.get(k) == v for k, v in body.items() if k != "jsonData") and \
            all((current.get("jsonData") or {}).get(k) == v for k, v in body["jsonData"].items()):
        report.unchanged.append(name)
        return
    api.datasource.update_datasource_by_uid(DATASOURCE_UID, {**body, "id": current.get("id")})
    report.updated.append(name)


def _push_dashboard(api: GrafanaApi, spec: DashboardSpec, report: PushReport) -> None:
    ours = spec.to_json_plain()
    name = f"dashboard {spec.uid}"
    try:
        stored = api.dashboard.get_dashboard(spec.uid)
    except GrafanaException as exc:
        if not _missing(exc):
            raise
        stored = None
    if stored is not None and _comparable(stored.get("dashboard", {})) == _comparable(ours) \
            and stored.get("meta", {}).get("folderUid") == FOLDER_UID:
        report.unchanged.append(name)
        return
    api.dashboard.update_dashboard({"dashboard": {**ours, "id": None}, "folderUid": FOLDER_UID, "overwrite": True,
                                    "message": "twin grafana push"})
    (report.updated if stored is not None else report.created).append(name)
