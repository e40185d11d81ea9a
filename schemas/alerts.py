"""What the alert engine emits: every alert transition (topic `fleet.alerts.v1`)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from schemas.envelope import Contract, Envelope

AlertPhase = Literal["pending", "firing", "suppressed", "resolved", "cancelled"]


class Alert(Contract):
    """One alert as the engine holds it: its rule, dedup key, labels and the text a person acts on."""

    key: str = Field(description="Dedup key: `<rule>/<rack>` for rack rules, `<rule>/<CDU>/<severity>` for a CDU's, "
                                 "`<rule>/<place or generation>` otherwise.")
    rule: str = Field(description="The rule's name, also the `alertname` label and the runbook's file name.")
    labels: dict[str, str] = Field(description="alertname, severity, scope, owner, subsystem, facility, hall, "
                                               "generation, rack, check, operator, kind, cooling_unit "
                                               "(those that apply).")
    annotations: dict[str, str] = Field(description="summary, description, measured, band, intent_revision, "
                                                    "runbook_url, dashboard_url.")
    value: float | None = None
    active_since: AwareDatetime | None = None
    fired_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None


class AlertChanged(Envelope):
    """An alert moved from one phase to another (stored in `alert_history` first, then published)."""

    TYPE: ClassVar[str] = "alert.changed"
    type: Literal["alert.changed"] = "alert.changed"
    schema_version: Literal[1] = 1
    state: AlertPhase
    previous: AlertPhase | None = None
    alert: Alert
