"""The alert engine: a process (`twin alerts run`) that reads the twin database, runs the rules, and
delivers every alert transition to Alertmanager, PagerDuty (optional) and fleet.alerts.v1.

Why a process of its own and not a Faust agent in the worker: the rules judge the fleet as a
whole (generation drift, facility staleness, hall headroom), while each worker holds only its
partitions' racks; and a page must not depend on which worker holds a partition at the moment.
The workers' committed current state (deviations, rack_state) is the input; the alert state
is in PostgreSQL (twin/alerting/store.py).

Restart and take-over: several engines may run; the one holding a PostgreSQL advisory lock is
active, the others wait for it (the lock goes with its connection when the active one dies).
An engine that starts loads every alert's state, so a firing alert stays firing: no second page.
Transitions are committed before they are delivered (the history is the outbox), so a crash
between the two delivers them after the restart; Alertmanager and PagerDuty deduplicate the
rare repeat (same labels; same dedup key).

    each tick:  read facts ─▶ rules.observe ─▶ rules.advance ─▶ store.record (one transaction)
                ─▶ deliver: Alertmanager (transitions + periodic re-send), PagerDuty, Kafka
    ticks:      every TWIN_ALERT_EVAL_SECONDS, and as soon as a worker commits a deviation that
                opened or closed (LISTEN twin_deviations; at most every MIN_TICK_GAP_SECONDS)
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row

from twin.alerting.alertmanager import Alertmanager, alert_payload
from twin.alerting.errors import DeliveryFailed
from twin.alerting.facts import read_facts
from twin.alerting.pagerduty import PagerDuty
from twin.alerting.rules import AlertState, FleetFacts, Phase, Transition, advance, inhibited, observe
from twin.alerting.settings import AlertingSettings
from twin.alerting.store import AlertStore
from twin.errors import StoreError, StoreUnavailable, TwinError

__all__ = ["Engine", "LEADER_LOCK"]

log = structlog.get_logger(__name__)

LEADER_LOCK = 0x616C7274  # 'alrt': held by the active engine
FLEET_EVERY_SECONDS = 5.0
"""Fleet aggregates (hall loads, generation and facility counts, racks whose CDU is not ok), and the scan
for racks newly critical or stale, run this often; racks with an open deviation or a live alert are read
every tick. So a health, stale or CDU alert may start up to this much later than a deviation's (slow
conditions by nature; a CDU seen on a deviating rack is seen in that rack's tick)."""
PERSIST_EVERY_SECONDS = 10.0
"""A live alert whose phase and labels did not change is written back at most this often."""
PRUNE_EVERY_SECONDS = 60.0
MIN_TICK_GAP_SECONDS = 0.1
"""Woken by every deviation opened or closed, the engine still ticks at most ten times a second."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Engine:
    """Runs the rules against one twin database; see the module docstring."""

    def __init__(self, database_url: str, settings: AlertingSettings, *, stale_after_seconds: float,
                 kafka_bootstrap: str | None = None, alerts_topic: str | None = None, source: str = "twin-alerts",
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.database_url = database_url
        self.settings = settings
        self.stale_after_seconds = stale_after_seconds
        self.kafka_bootstrap = kafka_bootstrap
        self.alerts_topic = alerts_topic
        self.source = source
        self.clock = clock
        self.links = settings.links()
        self.states: dict[str, AlertState] = {}
        self._persisted: dict[str, AlertState] = {}
        self._fleet: FleetFacts = FleetFacts()
        self._fleet_at = 0.0
        self._pruned_at = time.monotonic()
        self._store: AlertStore | None = None
        self._facts_conn: psycopg.Connection[Any] | None = None
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._producer: Any = None
        self.alertmanager = (Alertmanager(settings.alertmanager_url, attempts=3, first_backoff_s=0.1)
                             if settings.alertmanager_url else None)
        key = settings.pagerduty_routing_key
        self.pagerduty = None if key is None else PagerDuty(key.get_secret_value(), settings.pagerduty_url)

    # -- life cycle ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, on_active: Callable[[], None] | None = None) -> None:
        """Wait to become the active engine, then evaluate every `alert_eval_seconds` until `stop`.
        A lost database connection drops back to waiting (a standby may have taken over)."""
        while not stop.is_set():
            try:
                if not self._acquire(stop):
                    return
                self._load()
                log.info("alert engine active", alerts=len(self.states))
                if on_active is not None:
                    on_active()
                while not stop.is_set():
                    started = time.monotonic()
                    self.tick()
                    self._wait(started, stop)
            except StoreError as exc:
                log.warning("alert engine lost the database; waiting to become active again", error=str(exc))
                self._disconnect()
                stop.wait(1.0)
        self.close()

    def _wait(self, started: float, stop: threading.Event) -> None:
        """Until the next tick: `alert_eval_seconds` after this one started, or sooner when a worker
        commits a deviation that opened or closed (NOTIFY twin_deviations, migration 0031), but never
        sooner than MIN_TICK_GAP_SECONDS after this one started."""
        assert self._lock_conn is not None
        if stop.wait(max(0.0, MIN_TICK_GAP_SECONDS - (time.monotonic() - started))):
            return
        remaining = self.settings.alert_eval_seconds - (time.monotonic() - started)
        try:
            if remaining > 0:
                for _ in self._lock_conn.notifies(timeout=remaining, stop_after=1):
                    pass
            for _ in self._lock_conn.notifies(timeout=0):  # drop the rest: one tick answers them all
                pass
        except psycopg.Error as exc:
            raise StoreError(f"leader lock connection lost: {exc}") from exc

    def _acquire(self, stop: threading.Event) -> bool:
        """Hold the leader lock (waiting while another engine holds it); False if stopped first."""
        waited = False
        while not stop.is_set():
            try:
                if self._lock_conn is None or self._lock_conn.closed:
                    self._lock_conn = psycopg.connect(self.database_url, autocommit=True, connect_timeout=10)
                got = self._lock_conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
                if got and got[0]:
                    self._lock_conn.execute("LISTEN twin_deviations")
                    return True
            except psycopg.Error as exc:
                log.warning("database unavailable", error=str(exc))
                self._disconnect()
            if not waited:
                log.info("another alert engine is active; standing by")
                waited = True
            stop.wait(1.0)
        return False

    def _load(self) -> None:
        try:
            self._facts_conn = psycopg.connect(self.database_url, row_factory=dict_row, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot reach the twin database: {exc}") from exc
        self._store = AlertStore.connect(self.database_url)
        self.states = self._store.states()
        self._persisted = dict(self.states)
        self._fleet_at = 0.0

    def _disconnect(self) -> None:
        for conn in (self._facts_conn, self._lock_conn, None if self._store is None else self._store.conn):
            if conn is not None:
                try:
                    conn.close()
                except psycopg.Error:
                    pass
        self._facts_conn = self._lock_conn = self._store = None

    def close(self) -> None:
        self._disconnect()
        if self.alertmanager is not None:
            self.alertmanager.close()
        if self.pagerduty is not None:
            self.pagerduty.close()
        if self._producer is not None:
            self._producer.close(timeout=2)
            self._producer = None

    # -- one evaluation ------------------------------------------------------------------------

    def tick(self) -> list[Transition]:
        """Read, judge, record, deliver; the transitions made."""
        assert self._store is not None and self._facts_conn is not None and self._lock_conn is not None
        try:
            self._lock_conn.execute("SELECT 1")  # still the active engine: the lock lives with this connection
        except psycopg.Error as exc:
            raise StoreError(f"leader lock connection lost: {exc}") from exc
        now = self.clock()
        read_fleet = time.monotonic() - self._fleet_at >= FLEET_EVERY_SECONDS
        live_racks = [s.rack_id for s in self.states.values() if s.rack_id and s.live]
        racks, fleet = read_facts(self._facts_conn, now, now - timedelta(seconds=self.stale_after_seconds / 2),
                                  live_racks, fleet=read_fleet)
        if fleet is not None:
            self._fleet, self._fleet_at = fleet, time.monotonic()
        seen = observe(racks, self._fleet, self.states, now, stale_after_seconds=self.stale_after_seconds,
                       links=self.links)
        changed, transitions = advance(self.states, seen, now, for_scale=self.settings.alert_for_scale)
        self._store.record(self._worth_writing(changed, now), transitions, source=self.source,
                           alertmanager=self.alertmanager is not None, pagerduty=self.pagerduty is not None)
        self.states.update(changed)
        if len(transitions) <= 20:
            for t in transitions:
                log.info("alert", key=t.state.key, phase=t.phase.value, previous=t.previous and t.previous.value)
        else:
            log.info("alerts", transitions=len(transitions),
                     phases=dict(Counter(t.phase.value for t in transitions)))
        self.deliver(now)
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._prune(now)
        return transitions

    def _worth_writing(self, changed: Mapping[str, AlertState], now: datetime) -> dict[str, AlertState]:
        """Changed phase or labels always; a live alert's newer value or last-true time at most every
        PERSIST_EVERY_SECONDS (it is re-read only after a restart, where a few seconds do not matter)."""
        out = {}
        for key, state in changed.items():
            before = self._persisted.get(key)
            if (before is None or before.phase is not state.phase or before.labels != state.labels
                    or before.last_true_at is None or state.last_true_at is None
                    or (state.last_true_at - before.last_true_at).total_seconds() >= PERSIST_EVERY_SECONDS):
                out[key] = state
        self._persisted.update(out)
        return out

    def _prune(self, now: datetime) -> None:
        assert self._store is not None
        before = now - timedelta(seconds=self.settings.alert_retention_seconds)
        self._store.prune(before)
        for key, s in list(self.states.items()):
            if not s.live and (s.last_true_at or s.resolved_at or now) < before:
                del self.states[key]
                self._persisted.pop(key, None)
        self._pruned_at = time.monotonic()

    # -- delivery ------------------------------------------------------------------------------

    def deliver(self, now: datetime) -> None:
        """Hand undelivered transitions to each sink; a sink that fails keeps them for the next tick."""
        for sink in (self._to_alertmanager, self._to_pagerduty, self._to_kafka):
            try:
                sink(now)
            except (DeliveryFailed, TwinError) as exc:
                if isinstance(exc, StoreError):
                    raise
                log.warning("alert delivery failed; retried next tick", sink=sink.__name__, error=str(exc))

    def _to_alertmanager(self, now: datetime) -> None:
        if self.alertmanager is None:
            return
        assert self._store is not None
        rows = self._store.undelivered("alertmanager")
        ahead = now + timedelta(seconds=4 * self.settings.alert_resend_seconds)
        payload, keys = [], set()
        for r in rows:
            state = self.states.get(r["alert_key"])
            starts = _parse(r["body"]["alert"].get("fired_at")) or r["at"]
            ends = ahead if r["phase"] == Phase.FIRING else r["at"]
            if r["phase"] == Phase.FIRING and state is not None and state.phase is not Phase.FIRING:
                continue  # fired and cleared between two deliveries: its resolve follows in this batch
            payload.append(alert_payload(r["labels"], r["annotations"], starts, ends, self._generator(r["labels"])))
            keys.add(r["alert_key"])
        resend = [s for s in self._store.due_for_resend(now - timedelta(seconds=self.settings.alert_resend_seconds))
                  if s.key not in keys]
        payload += [alert_payload(s.labels, s.annotations, s.fired_at or now, ahead, self._generator(s.labels))
                    for s in resend]
        if not payload:
            return
        # Fleet alerts first, in a request of their own: they inhibit rack alerts, and Alertmanager's
        # inhibitor learns of an alert asynchronously, so a source must not arrive after its targets.
        sources = [a for a in payload if a["labels"].get("scope") != "rack"]
        for part in (sources, [a for a in payload if a["labels"].get("scope") == "rack"]):
            self.alertmanager.post_alerts(part)
        self._store.delivered("alertmanager", [r["id"] for r in rows], now)
        self._store.sent([*keys, *(s.key for s in resend)], now)

    def _to_pagerduty(self, now: datetime) -> None:
        if self.pagerduty is None:
            return
        assert self._store is not None
        rows = self._store.undelivered("pagerduty")
        firing = [s.labels for s in self.states.values() if s.phase is Phase.FIRING]
        done = []
        for r in rows:
            action = "trigger" if r["phase"] == Phase.FIRING else "resolve"
            if action == "trigger" and inhibited(r["labels"], firing) is not None:
                done.append(r["id"])  # explained by a fleet alert: that one pages
                continue
            self.pagerduty.send(action, r["labels"], r["annotations"])
            done.append(r["id"])
        if done:
            self._store.delivered("pagerduty", done, now)

    def _to_kafka(self, now: datetime) -> None:
        if not self.kafka_bootstrap or not self.alerts_topic:
            return
        assert self._store is not None
        rows = self._store.undelivered("published")
        if not rows:
            return
        producer = self._kafka()
        import orjson
        from kafka.errors import KafkaError

        try:
            for r in rows:
                producer.send(self.alerts_topic, key=r["alert_key"].encode(), value=orjson.dumps(r["body"]))
            producer.flush(timeout=5)
        except KafkaError as exc:
            raise DeliveryFailed(f"publishing alert transitions to {self.alerts_topic}: {exc}") from exc
        self._store.delivered("published", [r["id"] for r in rows], now)

    def _kafka(self) -> Any:
        if self._producer is None:
            from kafka import KafkaProducer
            from kafka.errors import KafkaError

            try:
                self._producer = KafkaProducer(bootstrap_servers=self.kafka_bootstrap, client_id=self.source,
                                               acks="all", linger_ms=0, max_block_ms=5000,
                                               allow_auto_create_topics=False)
            except KafkaError as exc:
                raise DeliveryFailed(f"no Kafka broker at {self.kafka_bootstrap}: {exc}") from exc
        return self._producer

    def _generator(self, labels: Mapping[str, str]) -> str:
        fill = {"rule": labels.get("alertname", ""), "rack": labels.get("rack", ""),
                "facility": labels.get("facility", ""), "generation": labels.get("generation", "")}
        return (self.links.rack_dashboard if labels.get("rack") else self.links.fleet_dashboard).format(**fill)


def _parse(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)

