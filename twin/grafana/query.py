"""The PostgreSQL data source's query, as a grafana-foundation-sdk data query variant.

The SDK ships query models for Prometheus, Loki, Athena, BigQuery and others, but none for
Grafana's built-in PostgreSQL data source; this module adds it in the SDK's own shape (a
`Dataquery` model with `to_json`/`from_json`, a builder, and a registered variant), so panels
built with it serialise and parse back through `dashboard.Dashboard.from_json` like any other.
Field names follow what Grafana's SQL query editor saves (`rawSql`, `format`, `rawQuery`,
`editorMode`).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard

__all__ = ["DATASOURCE", "DATASOURCE_TYPE", "DATASOURCE_UID", "PostgresQuery", "SqlAnnotationTarget", "sql"]

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "fleet-twin-postgres"
DATASOURCE = dashboard.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

Format = Literal["time_series", "table"]


class PostgresQueryModel(cogvariants.Dataquery):
    """One SQL query of a panel, as Grafana stores it."""

    def __init__(self, ref_id: str = "A", raw_sql: str = "", format_val: Format = "table",
                 datasource: dashboard.DataSourceRef | None = None, hide: bool | None = None) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format_val = format_val
        self.datasource = datasource
        self.hide = hide

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {"refId": self.ref_id, "rawSql": self.raw_sql, "format": self.format_val,
                                      "rawQuery": True, "editorMode": "code"}
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        unknown = set(data) - {"refId", "rawSql", "format", "rawQuery", "editorMode", "datasource", "hide", "sql"}
        if unknown:
            raise ValueError(f"unknown PostgreSQL query fields: {sorted(unknown)}")
        if data.get("format", "table") not in ("time_series", "table"):
            raise ValueError(f"format must be time_series or table, not {data['format']!r}")
        ds = data.get("datasource")
        return cls(data.get("refId", "A"), data.get("rawSql", ""), data.get("format", "table"),
                   dashboard.DataSourceRef.from_json(ds) if ds else None, data.get("hide"))


cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE,
                                                                 from_json_hook=PostgresQueryModel.from_json))


class PostgresQuery(cogbuilder.Builder[PostgresQueryModel]):
    def __init__(self, raw_sql: str, format_val: Format = "table", ref_id: str = "A") -> None:
        self._internal = PostgresQueryModel(ref_id, raw_sql, format_val, DATASOURCE)

    def build(self) -> PostgresQueryModel:
        return self._internal


def sql(raw_sql: str, format_val: Format = "table", ref_id: str = "A") -> PostgresQuery:
    """A panel query: dedented SQL against the fleet-twin data source."""
    import textwrap

    return PostgresQuery(textwrap.dedent(raw_sql).strip(), format_val, ref_id)


class SqlAnnotationTarget(cogbuilder.Builder[Any]):
    """An annotation query's SQL, shaped as Grafana's SQL data sources save it (the SDK's
    `AnnotationTarget` only models the built-in Grafana annotations)."""

    def __init__(self, raw_sql: str) -> None:
        self._internal = PostgresQueryModel("Anno", raw_sql, "table")

    def build(self) -> Any:
        return self._internal
