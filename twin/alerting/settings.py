"""Alerting settings, from the environment (`TWIN_*`) like every other setting (twin/settings.py).

Kept apart from the shared `Settings` so that alerting's knobs live with alerting. The Grafana
link is a URL template: `TWIN_GRAFANA_URL` + the rack detail dashboard's uid
(`TWIN_GRAFANA_RACK_DASHBOARD_UID`, `fleet-rack` as exported to deploy/grafana/dashboards/) with
`var-rack=<rack id>`.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from twin.alerting.rules import Links

__all__ = ["AlertingSettings", "get_alerting_settings"]


class AlertingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWIN_", extra="ignore")

    alertmanager_url: str = Field(default="http://127.0.0.1:9093",
                                  description="Alertmanager (API v2 below it); empty: none (history and Kafka only).")
    alert_eval_seconds: float = Field(default=0.5, gt=0, description="How often the engine evaluates the rules.")
    alert_resend_seconds: float = Field(
        default=60.0, gt=0, description="Firing alerts are re-sent this often; each is sent with endsAt four"
                                        " periods ahead, so a dead engine's alerts expire rather than fire forever.")
    alert_for_scale: float = Field(
        default=1.0, ge=0, description="Multiplies every rule's `for` duration (0 in tests and demos: fire at once).")
    alert_retention_seconds: float = Field(
        default=3600.0, gt=0, description="Resolved alerts stay in alert_state this long (the drift window needs"
                                          " at least 15 min); their history stays for good.")
    pagerduty_routing_key: SecretStr | None = Field(default=None, description="Set to page through PagerDuty too.")
    pagerduty_url: str = Field(default="https://events.pagerduty.com/v2/enqueue")
    grafana_url: str = Field(default="http://127.0.0.1:3000", description="Grafana, for the dashboard links.")
    grafana_rack_dashboard_uid: str = Field(default="fleet-rack")
    grafana_fleet_dashboard_uid: str = Field(default="fleet-overview")
    runbook_url: str = Field(
        default="docs/runbooks/{rule}.md",
        description="Runbook link template; {rule} is the rule. Point it at the repository's web view in production.")

    def links(self) -> Links:
        base = self.grafana_url.rstrip("/")
        return Links(
            runbook=self.runbook_url,
            rack_dashboard=f"{base}/d/{self.grafana_rack_dashboard_uid}?var-facility={{facility}}"
                           "&var-generation={generation}&var-rack={rack}",
            fleet_dashboard=f"{base}/d/{self.grafana_fleet_dashboard_uid}?var-facility={{facility}}"
                            "&var-generation={generation}",
        )


@lru_cache(maxsize=1)
def get_alerting_settings() -> AlertingSettings:
    return AlertingSettings()
