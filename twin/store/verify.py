"""`twin verify`: does every view of every rack say the same thing?

A rack is shown in several ways, and each must agree with the others:

- the live twin, as the workers projected it (`rack_state.twin` and its columns);
- the twin rebuilt from the event store (`twin rebuild`, one fold of every stored event);
- the twin `--as-of` now (`twin rack ID --as-of`, a fold from the newest usable snapshot);
- the dead letters of the rack's fold refusals (one open letter per refused event, same reason);
- the lifecycle-family deviations stored (stage, parts, firmware) and those the rebuilt twin
  has when judged now by its generation's latest intent;
- the open deviations the rack list counts, the rack detail lists, the fleet summary and the
  demo header count.

Each disagreement names its rack, the field and the two views that differ. The check reads
only; run it while workers are stopped or idle (a batch committing during the check can show
as a disagreement that the next run no longer finds).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg

from twin.domain.conformance import TELEMETRY_CHECKS, evaluate
from twin.domain.rack import RackTwin, fold_history
from twin.errors import FOLD_REASONS, StoreError
from twin.store import views
from twin.store.rebuild import rack_streams

__all__ = ["Disagreement", "VerifyReport", "snapshot_differences", "verify"]

_COLUMNS = ("generation", "status", "version", "facility_id", "hall_id", "row_id", "position")
"""`rack_state` columns that repeat a field of the stored twin (read by SQL views, Grafana, the API)."""


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Two views of one rack (or of the fleet, rack `*`) that say different things about one field."""

    rack_id: str
    field: str
    views: str
    """Which two views differ, e.g. `live != rebuilt`."""
    left: Any
    right: Any

    def __str__(self) -> str:
        return f"{self.rack_id}  {self.field}  {self.views}: {self.left!r} != {self.right!r}"


@dataclass(slots=True)
class VerifyReport:
    """What `verify` compared, and every disagreement it found."""

    racks: int = 0
    events: int = 0
    at: datetime | None = None
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.disagreements

    @property
    def racks_disagreeing(self) -> list[str]:
        """The racks with at least one disagreement (`*` stands for fleet-wide totals)."""
        return sorted({d.rack_id for d in self.disagreements})

    def by_field(self) -> Counter[str]:
        return Counter(f"{d.field} ({d.views})" for d in self.disagreements)


def snapshot_differences(left: Mapping[str, Any], right: Mapping[str, Any]) -> list[str]:
    """The top-level fields of two twin snapshots that differ, in a stable order."""
    return [k for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)]


def _compare(out: list[Disagreement], rack_id: str, views_: str, left: Mapping[str, Any],
             right: Mapping[str, Any]) -> None:
    for name in snapshot_differences(left, right):
        out.append(Disagreement(rack_id, name, views_, left.get(name), right.get(name)))


def verify(database_url: str, *, now: datetime | None = None) -> VerifyReport:
    """Compare every view of every rack; the report lists each disagreement (none: the twin says one thing)."""
    now = now or datetime.now(timezone.utc)
    report = VerifyReport(at=now)
    out = report.disagreements
    try:
        with views.connect(database_url) as conn, psycopg.connect(database_url) as raw:
            catalog = views.intent_catalog(conn)
            live = {r["rack_id"]: r for r in conn.execute(
                "SELECT rack_id, twin, deviation_count, " + ", ".join(_COLUMNS) + " FROM rack_state")}
            listed = {r["rack_id"]: r for r in views.list_racks(conn, limit=max(1, len(live)) * 2)}
            detail_counts = _detail_counts(conn, live)
            letters = _open_fold_letters(conn)
            judged: dict[str, set[str]] = {}
            for r in conn.execute("SELECT rack_id, check_name FROM deviations WHERE NOT (check_name = ANY(%s))",
                                  (sorted(TELEMETRY_CHECKS),)):
                judged.setdefault(r["rack_id"], set()).add(r["check_name"])
            summary = views.fleet_summary(conn)
            seen: set[str] = set()
            for rack_id, events in rack_streams(raw):
                seen.add(rack_id)
                report.racks += 1
                report.events += len(events)
                rebuilt = fold_history(rack_id, events, catalog)
                rebuilt_snapshot = rebuilt.twin.snapshot()
                row = live.get(rack_id)
                if row is None:
                    out.append(Disagreement(rack_id, "rack", "events != live", "has events", "no live state"))
                    continue
                _compare(out, rack_id, "live != rebuilt", row["twin"], rebuilt_snapshot)
                as_of = views.rack_as_of(conn, rack_id, now, catalog=catalog).snapshot()
                _compare(out, rack_id, "rebuilt != as-of now", rebuilt_snapshot, as_of)
                stored_twin = RackTwin.from_snapshot(row["twin"]) if row["twin"] else RackTwin(rack_id)
                for column in _COLUMNS:
                    value = getattr(stored_twin, column)
                    value = getattr(value, "value", value)
                    if row[column] != value:
                        out.append(Disagreement(rack_id, column, "rack_state column != live twin", row[column], value))
                intent = catalog.latest(rebuilt.twin.generation) if rebuilt.twin.generation else None
                due = {d.check for d in evaluate(rebuilt.twin, intent, now, only="lifecycle")} if intent else set()
                if due != judged.get(rack_id, set()):
                    out.append(Disagreement(rack_id, "lifecycle deviations", "rebuilt judged now != stored",
                                            sorted(due), sorted(judged.get(rack_id, set()))))
                refused = {event_id: r.reason for event_id, r in rebuilt.refused.items()}
                lettered = letters.get(rack_id, {})
                for event_id in sorted(set(refused) | set(lettered)):
                    if refused.get(event_id) != lettered.get(event_id):
                        out.append(Disagreement(rack_id, f"refusal {event_id}", "rebuilt fold != dead letters",
                                                refused.get(event_id), lettered.get(event_id)))
            for rack_id in sorted(set(live) - seen):
                if live[rack_id]["twin"]:
                    out.append(Disagreement(rack_id, "rack", "live != events", "live state", "no events"))
            _compare_counts(out, live, listed, detail_counts, summary)
    except psycopg.Error as exc:
        raise StoreError(f"verify could not read the twin database: {exc}") from exc
    return report


def _detail_counts(conn: psycopg.Connection[Any], racks: Iterable[str]) -> dict[str, int]:
    """Open deviations per rack as `twin rack ID` lists them (`views.rack_detail`)."""
    counts = {}
    for rack_id in racks:
        detail = views.rack_detail(conn, rack_id, history=False)
        counts[rack_id] = len(detail["deviations"]) if detail else 0
    return counts


def _open_fold_letters(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]]:
    """rack -> event_id -> reason of the open dead letters of fold refusals."""
    found: dict[str, dict[str, str]] = {}
    for r in conn.execute(
            "SELECT rack_id, event_id, reason FROM deadletters WHERE replayed_at IS NULL AND reason = ANY(%s)"
            " AND rack_id IS NOT NULL AND event_id IS NOT NULL ORDER BY id", (list(FOLD_REASONS),)):
        found.setdefault(r["rack_id"], {})[str(r["event_id"])] = r["reason"]
    return found


def _compare_counts(out: list[Disagreement], live: Mapping[str, Mapping[str, Any]],
                    listed: Mapping[str, Mapping[str, Any]], detail: Mapping[str, int],
                    summary: views.FleetSummary) -> None:
    """The deviation and rack counts of the rack list, rack detail, fleet summary and demo header."""
    for rack_id in sorted(live):
        row = listed.get(rack_id)
        if row is None:
            out.append(Disagreement(rack_id, "rack", "live != rack list", "present", "absent"))
            continue
        if row["deviation_count"] != detail[rack_id]:
            out.append(Disagreement(rack_id, "open deviations", "rack list != rack detail", row["deviation_count"],
                                    detail[rack_id]))
    groups: dict[tuple[str, str | None], dict[str, int]] = {}
    for rack_id, row in live.items():
        facility = row["facility_id"] or "(not placed)"
        g = groups.setdefault((facility, row["generation"]), Counter())
        g["racks"] += 1
        g["out_of_envelope"] += 1 if detail[rack_id] > 0 else 0
        g[f"stage {row['status']}"] += 1
    shown = {(g["facility_id"], g["generation"]): g for g in summary.groups}
    for key in sorted(set(groups) | set(shown), key=str):
        want, got = groups.get(key, {}), shown.get(key)
        name = f"fleet summary {key[0]}/{key[1]}"
        if got is None:
            out.append(Disagreement("*", name, "rack detail != fleet summary", dict(want), "absent"))
            continue
        for what in ("racks", "out_of_envelope"):
            if got[what] != want.get(what, 0):
                out.append(Disagreement("*", f"{name} {what}", "rack detail != fleet summary", want.get(what, 0),
                                        got[what]))
        stages = {f"stage {k}": v for k, v in got["stages"].items()}
        for stage in sorted(set(stages) | {k for k in want if k.startswith("stage ")}):
            if stages.get(stage, 0) != want.get(stage, 0):
                out.append(Disagreement("*", f"{name} {stage}", "rack list != fleet summary", want.get(stage, 0),
                                        stages.get(stage, 0)))
    total = sum(detail.values())
    if summary.deviations != total:
        out.append(Disagreement("*", "open deviations", "rack detail != demo header", total, summary.deviations))
    if summary.racks != len(live):
        out.append(Disagreement("*", "racks", "rack list != demo header", len(live), summary.racks))
