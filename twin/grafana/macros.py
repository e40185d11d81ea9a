"""Grafana's PostgreSQL data source, as far as a panel's SQL is concerned: template variables
and macros expanded the way Grafana expands them, so tests can run exported panels as Grafana
would send them to the database.

What is reproduced, from Grafana's documentation of the PostgreSQL data source and its macro
engine (pkg/tsdb/grafana-postgresql-datasource/macros.go, public/app/features/templating):

* `$__interval` / `$__interval_ms`: the range over the panel's max data points, rounded by
  Grafana's interval table (`roundInterval`), never below the panel's `interval`;
* template variables: a multi-value or include-All variable becomes its values quoted as SQL
  literals and joined by commas ('a','b'); a single-value variable is inserted as it is, with
  single quotes doubled (so panels write it inside quotes: '$rack');
* `$__timeFilter(col)` -> `col BETWEEN '<from>' AND '<to>'` (RFC 3339, UTC);
* `$__timeFrom()` / `$__timeTo()` -> `'<from>'` / `'<to>'`;
* `$__timeGroup(col, interval)` -> `floor(extract(epoch from col)/<s>)*<s>`, and
  `$__timeGroupAlias(col, interval)` the same `AS "time"` (the epoch buckets are UTC);
* `$__time(col)` -> `col AS "time"`, `$__timeEpoch(col)` -> `extract(epoch from col) AS "time"`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

__all__ = ["GrafanaRequest", "expand", "interval_for"]

# Grafana's roundInterval (rangeutil.ts): upper bound (ms, exclusive) -> rounded interval (ms)
_ROUND = ((15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000), (3_500, 2_000),
          (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000), (45_000, 30_000), (90_000, 60_000),
          (210_000, 120_000), (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000),
          (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000), (16_200_000, 10_800_000),
          (32_400_000, 21_600_000), (86_400_000, 43_200_000), (604_800_000, 86_400_000),
          (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000))
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"\s*'?(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)'?\s*", text)
    if not match:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def _hms(ms: int) -> str:
    """Grafana's secondsToHms-style text of an interval: 1m, 2h, 1d, 500ms."""
    for unit, size in (("y", 31_536_000_000), ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def interval_for(start: datetime, end: datetime, max_data_points: int = 1000, min_interval: str | None = None
                 ) -> tuple[str, int]:
    """(`$__interval`, `$__interval_ms`) of a panel over [start, end]."""
    raw = (end - start).total_seconds() * 1000 / max_data_points
    if min_interval:
        raw = max(raw, _seconds(min_interval) * 1000)
    ms = next((r for bound, r in _ROUND if raw < bound), 31_536_000_000)
    if min_interval:
        ms = max(ms, int(_seconds(min_interval) * 1000))
    return _hms(ms), ms


def _rfc3339(t: datetime) -> str:
    text = t.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return re.sub(r"\.?0+Z$", "Z", text) if "." in text else text


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class GrafanaRequest:
    """What Grafana knows when it runs a panel: the range, the panel's limits, the variables."""

    start: datetime
    end: datetime
    variables: Mapping[str, str | Sequence[str]]
    multi: frozenset[str] = frozenset()
    max_data_points: int = 1000
    min_interval: str | None = None


def _args(text: str, name: str) -> list[str]:
    return [a.strip() for a in text.split(",")] if text.strip() else []


def expand(raw_sql: str, request: GrafanaRequest) -> str:
    """The SQL Grafana would send to PostgreSQL for this panel query."""
    interval, interval_ms = interval_for(request.start, request.end, request.max_data_points, request.min_interval)
    sql = raw_sql.replace("$__interval_ms", str(interval_ms)).replace("$__interval", interval)
    for name in sorted(request.variables, key=len, reverse=True):
        value = request.variables[name]
        if name in request.multi or not isinstance(value, str):
            values = [value] if isinstance(value, str) else list(value)
            text = ",".join(_literal(v) for v in values)
        else:
            text = value.replace("'", "''")
        sql = re.sub(r"\$\{" + name + r"\}|\$" + name + r"\b", lambda _: text, sql)
    start, end = _rfc3339(request.start), _rfc3339(request.end)

    def macro(match: re.Match[str]) -> str:
        name, args = match[1], _args(match[2], match[1])
        if name == "timeFilter":
            return f"{args[0]} BETWEEN '{start}' AND '{end}'"
        if name == "timeFrom":
            return f"'{start}'"
        if name == "timeTo":
            return f"'{end}'"
        if name in ("timeGroup", "timeGroupAlias"):
            if len(args) < 2:
                raise ValueError(f"$__{name} needs a column and an interval: {match[0]}")
            s = _seconds(args[1])
            seconds = int(s) if s == int(s) else s
            group = f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"
            return group + (' AS "time"' if name == "timeGroupAlias" else "")
        if name == "time":
            return f'{args[0]} AS "time"'
        if name == "timeEpoch":
            return f'extract(epoch from {args[0]}) AS "time"'
        raise ValueError(f"macro $__{name} is not one this expander knows")

    sql = re.sub(r"\$__(\w+)\(([^()]*)\)", macro, sql)
    if "$" in re.sub(r"'[^']*'", "", sql):
        leftover = re.findall(r"\$\w+", re.sub(r"'[^']*'", "", sql))
        if leftover:
            raise ValueError(f"unexpanded variables or macros: {sorted(set(leftover))}")
    return sql
