"""Rebuild every rack twin from the event store, and check it against the live state.

A twin is the fold of its events (`RackTwin.replay`), so the event store alone must give back
exactly what the workers projected into `rack_state`. `rebuild` streams the store once, in
stream order, folds rack by rack, and either compares (`write=False`: a mismatch is a bug, and
is reported rack by rack) or writes the rebuilt lifecycle side back (after a fold-logic fix).

Why it reads the store the way it does (issue 13, measured on 20,000 racks): nine events in ten
fit a part. They, and firmware updates, come back as the few fields the fold reads and are
folded as light records (`twin.domain.recorded`), a run of installations packed into the bill
at once (`BillOfMaterials.installed_many`); only the other events are parsed from JSON. The next
batch is read in a thread while this one folds. The fold is still `fold_history`, the one used
live and for `--as-of`, so rebuild, live and as-of agree by construction (`twin verify`).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_loads

from schemas import LIFECYCLE_TYPES
from twin.errors import StoreError
from twin.domain.intent import IntentCatalog
from twin.domain.rack import RackTwin
from twin.domain.recorded import RecordedFlash, RecordedInstall
from twin.store.stored import stored_event

__all__ = ["RebuildResult", "default_workers", "fast_json", "rack_batches", "rack_streams", "rebuild"]


@dataclass(slots=True)
class RebuildResult:
    racks: int = 0
    events: int = 0
    seconds: float = 0.0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Racks with events but no live state row."""

    @property
    def equal(self) -> bool:
        return not self.mismatched and not self.missing


_RACK_STREAMS = "stream_id NOT LIKE '%%:%%' AND stream_id <> 'rollout'"
"""Rack streams: the others are reference streams (`facility:…`, `intent:…`, `rollout`)."""

_RECORD, _FIELD = "\x1e", "\x1f"
"""Between a rack's events, and between the fields of a compact part installation. Neither can
appear in JSON text (control characters are escaped there); a field holding one is caught by
the field count (`_compact`) and its rack read the JSON way."""

_KEY = "(extract(epoch FROM occurred_at) * 1000000)::int8, seq, replace(event_id::text, '-', '')"
_LIGHT = "type = 'TYPE' AND schema_version = 1 AND body->>'rack_id' = stream_id"
_HISTORY = (
    "SELECT stream_id,"
    f" string_agg(concat_ws(E'\\x1f', {_KEY}, c->>'slot', c->>'kind', c->>'part_number', c->>'serial_number',"
    " c->>'supplier', c->>'country_of_manufacture', coalesce(c->'firmware_version', 'null'), c->>'unit_value_usd'),"
    " E'\\x1e') FILTER (WHERE light = 'i'),"
    f" string_agg(concat_ws(E'\\x1f', {_KEY}, body->>'slot', body->>'firmware_version'), E'\\x1e')"
    " FILTER (WHERE light = 'f'),"
    " '[' || string_agg(body::text, ',' ORDER BY stream_version) FILTER (WHERE light = 'j') || ']'"
    " FROM (SELECT stream_id, stream_version, occurred_at, seq, event_id, body, body->'component' AS c, CASE"
    f" WHEN {_LIGHT.replace('TYPE', 'component.installed')} THEN 'i'"
    f" WHEN {_LIGHT.replace('TYPE', 'component.firmware_updated')} THEN 'f' ELSE 'j' END AS light"
    " FROM events WHERE {where}) e GROUP BY stream_id ORDER BY stream_id")
"""One row a rack: its part installations and its firmware updates as the fields the fold reads
of them (the key from the columns the intake filled from the validated event, then the event's
own fields; one record each), and every other event's JSON body in one JSON array. Why not
`json_agg(body)`: turning each stored body back into JSON text cost PostgreSQL about 2 µs an
event, and parsing it again about as much; nine events in ten are installations. (The fold
orders events by their key, so the three groups need no order between them.)"""

_JSON_HISTORY = "SELECT json_agg(body ORDER BY stream_version)::text FROM events WHERE stream_id = %s"

_loads = orjson.loads
_INSTALL_FIELDS, _FLASH_FIELDS = 11, 5


class _Unreadable(ValueError):
    """A compact record that does not read back as the stored event: its rack takes the JSON way."""


class _Firmware(dict[str, str | None]):
    """`firmware_version` as shipped (JSON: `null` or a string) -> its value; few versions exist."""

    def __missing__(self, text: str) -> str | None:
        value = _loads(text)
        if value is not None and type(value) is not str:
            raise _Unreadable(f"firmware_version {text!r}")
        if len(self) < 4_096:
            self[text] = value
        return value  # type: ignore[no-any-return]


_FIRMWARE = _Firmware()
_new_tuple = tuple.__new__


def _columns(text: str, width: int) -> list[list[str]]:
    """The fields of `width`-field records joined by `_RECORD` (fields by `_FIELD`), column by column.

    Every record must hold exactly `width - 1` field separators: a separator inside a value
    shows as a record of another width, and the rack is then read the JSON way.
    """
    records = text.split(_RECORD)
    counts = set(map(str.count, records, repeat(_FIELD)))
    if counts != {width - 1}:
        raise _Unreadable(f"records of {sorted(c + 1 for c in counts)} fields, not {width}")
    flat = text.replace(_RECORD, _FIELD).split(_FIELD)
    return [flat[i::width] for i in range(width)]


def _keys(us: list[str], seq: list[str], ids: list[str]) -> list[tuple[int, int, int]]:
    return list(zip(map(int, us), map(int, seq), map(int, ids, repeat(16))))


def _rack_events(rack_id: str, installs: str | None, flashes: str | None, others: str | None) -> list[Any]:
    """A rack's events as the fold takes them, from its `_HISTORY` row (raises `_Unreadable`).

    Installations and firmware updates are built column by column with `map` and `zip` (each
    record a tuple made in C, no Python call per record): at this rate a call is a tenth of a
    record's cost.
    """
    try:
        out = [stored_event(body["type"], body) for body in _loads(others)] if others else []
        if installs:
            us, seq, ids, slot, kind, part, serial, supplier, country, firmware, value = _columns(
                installs, _INSTALL_FIELDS)
            out += map(_new_tuple, repeat(RecordedInstall), zip(
                slot, kind, part, serial, supplier, country, map(_FIRMWARE.__getitem__, firmware),
                map(float, value), _keys(us, seq, ids), repeat(rack_id)))
        if flashes:
            us, seq, ids, slot, firmware = _columns(flashes, _FLASH_FIELDS)
            out += map(_new_tuple, repeat(RecordedFlash), zip(slot, firmware, _keys(us, seq, ids), repeat(rack_id)))
    except ValueError as exc:  # (orjson's errors and `_Unreadable` are ValueErrors)
        raise _Unreadable(str(exc)) from exc
    return out


def _json_events(conn: psycopg.Connection[Any], rack_id: str) -> list[Any]:
    """A rack's events from their JSON bodies, each constructed (or validated) as a contract model."""
    (bodies,) = conn.execute(_JSON_HISTORY, (rack_id,)).fetchone()  # type: ignore[misc]
    return [stored_event(body["type"], body) for body in _loads(bodies)]


def _bounds(column: str, first: str | None, after: str | None) -> tuple[str, list[str]]:
    where, params = "", []
    if first is not None:
        where += f" AND {column} >= %s"
        params.append(first)
    if after is not None:
        where += f" AND {column} < %s"
        params.append(after)
    return where, params


def fast_json(conn: psycopg.Connection[Any]) -> None:
    """Load json/jsonb on `conn` with orjson (the same values as `json.loads`, several times faster)."""
    set_json_loads(orjson.loads, conn)


_Row = tuple[str, str | None, str | None, str | None]
"""A `_HISTORY` row: rack id, its installations, its firmware updates, its other events."""


def _histories(conn: psycopg.Connection[Any], batch: int, first: str | None,
               after: str | None) -> Iterator[list[_Row]]:
    """Batches of `_HISTORY` rows (one a rack), via a server-side cursor."""
    bound, params = _bounds("stream_id", first, after)
    with conn.cursor(name="rebuild") as cur:
        cur.execute(_HISTORY.format(where=_RACK_STREAMS + bound), params)
        while rows := cur.fetchmany(batch):
            yield rows


def _events_of(conn: psycopg.Connection[Any], rows: list[_Row]) -> list[tuple[str, list[Any]]]:
    """(rack_id, its events as the fold takes them) for each row of `_histories`."""
    out = []
    for rack_id, *history in rows:
        try:
            events = _rack_events(rack_id, *history)
        except _Unreadable:
            events = _json_events(conn, rack_id)
        out.append((rack_id, events))
    return out


def rack_batches(conn: psycopg.Connection[Any], batch: int = 200, *, first: str | None = None,
                 after: str | None = None) -> Iterator[list[tuple[str, list[Any]]]]:
    """Batches of (rack_id, its events as the fold takes them), every rack stream, via a server-side cursor.

    One row a rack (`_HISTORY`): part installations and firmware updates arrive as compact
    records and become `RecordedInstall`s and `RecordedFlash`es; other events are constructed
    from their stored JSON (`twin.store.stored`: stored events were validated on the way in).
    A rack with a record that does not read back is read again from its JSON bodies alone.
    `first` and `after` bound the rack ids taken (`first <= id`, `id < after`); `batch` is racks
    per fetch.
    """
    for rows in _histories(conn, batch, first, after):
        yield _events_of(conn, rows)


def rack_streams(conn: psycopg.Connection[Any], batch: int = 200, *, first: str | None = None,
                 after: str | None = None) -> Iterator[tuple[str, list[Any]]]:
    """(rack_id, its events as the fold takes them) for every rack stream, in rack id order (`rack_batches`)."""
    for racks in rack_batches(conn, batch, first=first, after=after):
        yield from racks


_T = TypeVar("_T")


def _ahead(items: Iterator[_T]) -> Iterator[_T]:
    """`items`, the next one produced in a thread while the caller works on this one.

    Why: reading a batch is mostly waiting for PostgreSQL (the GIL is released meanwhile), so
    its query runs beside the fold of the batch before instead of after it.
    """
    done: Any = object()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="rebuild-read") as pool:
            pending = pool.submit(next, items, done)
            while (item := pending.result()) is not done:
                pending = pool.submit(next, items, done)
                yield item
    finally:  # the thread is done with `items`: end it here (its cursor closes while its connection is open)
        close = getattr(items, "close", None)
        if close is not None:
            close()


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the gc's youngest generation less often while folding, then as before.

    A fold allocates millions of small short-lived objects and no cycles; at the default
    threshold the collector ran every 700 allocations (measured: a sixth of the rebuild's CPU).
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 50_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _rebuild_range(database_url: str, write: bool, first: str | None, after: str | None,
                   progress: Callable[[int, int], None] | None = None, total: int = 0) -> RebuildResult:
    """Fold the racks with ids in [first, after) and compare with (or write over) their live state."""
    from twin.store.views import connect, intent_catalog

    result = RebuildResult()
    with psycopg.connect(database_url) as conn, connect(database_url) as live, _fewer_collections():
        fast_json(live)
        catalog: IntentCatalog = intent_catalog(live)  # type: ignore[arg-type]

        def read() -> Iterator[tuple[list[_Row], dict[str, str]]]:
            """Each batch of histories, with the live twins of its racks (as JSON text)."""
            for rows in _histories(conn, 200, first, after):
                yield rows, dict(conn.execute(  # type: ignore[arg-type]
                    "SELECT rack_id, twin::text FROM rack_lifecycle WHERE rack_id = ANY(%s)",
                    ([row[0] for row in rows],)).fetchall())

        for rows, stored in _ahead(read()):
            for rack_id, events in _events_of(conn, rows):
                twin = RackTwin.replay(rack_id, events, catalog)
                rebuilt = twin.snapshot()
                result.racks += 1
                result.events += len(events)
                held = stored.get(rack_id)
                same = held is not None and _loads(held) == rebuilt
                if held is None:
                    result.missing.append(rack_id)
                elif not same:
                    result.mismatched.append(rack_id)
                if write and not same:
                    live.execute(
                        "UPDATE rack_lifecycle SET twin = %s, status = %s, version = %s, generation = %s, facility_id = %s,"
                        " hall_id = %s, row_id = %s, position = %s, lifecycle_xid = pg_current_xact_id(),"
                        " updated_at = now() WHERE rack_id = %s",
                        (Jsonb(rebuilt), twin.status.value, twin.version, twin.generation, twin.facility_id,
                         twin.hall_id, twin.row_id, twin.position, rack_id))
                if progress is not None:
                    progress(result.racks, total)
    return result


def _ranges(conn: psycopg.Connection[Any], parts: int) -> tuple[int, list[tuple[str | None, str | None]]]:
    """How many rack streams there are, and `parts` contiguous id ranges holding about as many events each."""
    rows = conn.execute(f"SELECT stream_id, count(*) FROM events WHERE {_RACK_STREAMS} GROUP BY stream_id"
                        " ORDER BY stream_id").fetchall()
    if parts <= 1 or len(rows) < parts:
        return len(rows), [(None, None)]
    total = sum(n for _, n in rows)
    bounds: list[str | None] = [None]
    seen = 0
    for stream_id, n in rows:
        if seen >= total * len(bounds) / parts and len(bounds) < parts:
            bounds.append(stream_id)
        seen += n
    bounds.append(None)
    return len(rows), list(zip(bounds[:-1], bounds[1:]))


def default_workers() -> int:
    """Processes a rebuild folds in: one per core (the fold is CPU-bound Python)."""
    return max(1, os.cpu_count() or 1)


def rebuild(database_url: str, *, write: bool = False, progress: Callable[[int, int], None] | None = None,
            workers: int = 1) -> RebuildResult:
    """Fold every rack from its events; compare with (or, with `write`, replace) the live lifecycle state.

    With `workers` > 1 the racks are split into that many contiguous id ranges, each folded in its
    own process (rack streams are independent: a rack's twin is the fold of its own events only);
    `progress` then advances as each range finishes.
    """
    started = time.perf_counter()
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            total, ranges = _ranges(conn, workers)
        if len(ranges) == 1:
            result = _rebuild_range(database_url, write, None, None, progress, total)
        else:
            result = RebuildResult()
            spawn = multiprocessing.get_context("spawn")  # no forked copy of the caller's connections
            with ProcessPoolExecutor(len(ranges), mp_context=spawn) as pool:
                futures = [pool.submit(_rebuild_range, database_url, write, a, b) for a, b in ranges]
                for future in as_completed(futures):
                    part = future.result()
                    result.racks += part.racks
                    result.events += part.events
                    result.mismatched.extend(part.mismatched)
                    result.missing.extend(part.missing)
                    if progress is not None:
                        progress(result.racks, total)
            result.mismatched.sort()
            result.missing.sort()
    except psycopg.Error as exc:
        raise StoreError(f"rebuild failed: {exc}") from exc
    result.seconds = time.perf_counter() - started
    return result
