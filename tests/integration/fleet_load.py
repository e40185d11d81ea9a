"""Load for the worker-process tests: a simulated fleet on the tenant's topics, and the exact
reconciliation of what was produced against what the twin tables hold.

`Fleet` remembers every message it produced (lifecycle, telemetry, bad input) so that a test can
demand that each good reading and event is reflected exactly once, whatever happened to the
workers in between. `Pacer` produces telemetry cycles from a thread at a steady rate, so that a
test can kill, stop or starve a worker while the stream flows.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import psutil
from kafka import KafkaAdminClient, TopicPartition
from worker_process import query, scalar

from twin.domain.intent import IntentCatalog
from twin.publisher import Publisher
from twin.embedded.simulator import FaultPlan, FleetSimulator, Message, ReportShape


@dataclass
class Fleet:
    """A simulated fleet and the ledger of everything produced for it."""

    tenant: Any
    sim: FleetSimulator
    sent: Counter[str] = field(default_factory=Counter)
    sent_bytes: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    lifecycle_events: int = 0
    readings: int = 0
    latest: dict[str, datetime] = field(default_factory=dict)
    next_cycle: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def simulated(cls, tenant: Any, racks: int, *, seed: int = 7, cycles_ahead: int = 0,
                  malformed_share: float = 0.0, report_shape: ReportShape = "collector") -> Fleet:
        """A fleet whose telemetry will run `cycles_ahead` one-second cycles ending about now."""
        catalog = IntentCatalog.default()
        intents = {g: catalog.latest(g) for g in catalog.generations()}
        start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=cycles_ahead)
        sim = FleetSimulator(seed, racks, start, intents, faults=FaultPlan(hot_rack=1, leak=1),
                             malformed_share=malformed_share, report_shape=report_shape)
        return cls(tenant, sim, next_cycle=start)

    def publish(self, messages: list[Message]) -> None:
        with Publisher(self.tenant.kafka_bootstrap, self.tenant.topics) as publisher:
            publisher.send_all(messages)
            publisher.flush()
        self._account(messages)

    def _account(self, messages: list[Message]) -> None:
        with self._lock:
            for m in messages:
                self.sent[m.role] += 1
                self.sent_bytes[m.role] += len(m.value)
                if m.bad is not None:
                    self.bad[m.bad] += 1
                if m.role == "lifecycle" and m.bad in (None, "illegal-transition"):
                    self.lifecycle_events += 1  # an illegal transition is stored, and refused by the fold
                if m.role == "telemetry" and m.bad is None:
                    for r in orjson.loads(m.value)["readings"]:
                        self.readings += 1
                        at = datetime.fromisoformat(r["occurred_at"])
                        if at > self.latest.get(r["rack_id"], at - timedelta(seconds=1)):
                            self.latest[r["rack_id"]] = at

    def lifecycle(self) -> list[Message]:
        """Reference data (facilities, intent, plan) and every rack's history."""
        return [*self.sim.reference_messages(), *self.sim.history_messages()]

    def telemetry(self, cycles: int) -> list[Message]:
        """The next `cycles` poll cycles, one second apart."""
        out: list[Message] = []
        for t, cycle in self.sim.cycles(1.0, first=self.next_cycle, count=cycles):
            out.extend(cycle)
            self.next_cycle = t + timedelta(seconds=1)
        return out

    # -- what the database must say -----------------------------------------------------------------

    def applied(self, role: str) -> int:
        """Messages of `role`'s topic whose effects are committed, from the tracked offsets."""
        topic = getattr(self.tenant.topics, role)
        return int(scalar(self.tenant.database_url, 'SELECT coalesce(sum("offset" + 1), 0) FROM consumer_offsets'
                                                    " WHERE group_id = %s AND topic = %s",
                          (self.tenant.env["TWIN_WORKER_ID"], topic)))

    def all_applied(self) -> bool:
        return all(self.applied(role) == n for role, n in self.sent.items())

    def progress(self) -> dict[str, tuple[int, int]]:
        """(applied, sent) per role: what a timeout message shows."""
        return {role: (self.applied(role), n) for role, n in self.sent.items()}

    def open_letters(self) -> Counter[str]:
        """Dead letters still open (not adopted or re-folded since), by reason."""
        return Counter(dict(query(self.tenant.database_url, "SELECT reason, count(*) FROM deadletters"
                                                            " WHERE replayed_at IS NULL GROUP BY reason")))

    def assert_reflected_exactly_once(self) -> None:
        """Every produced reading and event is in the twin tables once; nothing else is."""
        db = self.tenant.database_url
        stored = scalar(db, "SELECT count(*) FROM telemetry")
        assert stored == self.readings, f"{stored} readings stored, {self.readings} produced"
        twice = query(db, "SELECT rack_id, occurred_at, count(*) FROM telemetry GROUP BY 1, 2 HAVING count(*) > 1"
                          " LIMIT 5")
        assert twice == [], f"readings stored more than once: {twice}"
        latest = dict(query(db, "SELECT rack_id, telemetry_at FROM rack_state WHERE telemetry_at IS NOT NULL"))
        wrong = {r: (latest.get(r), at) for r, at in self.latest.items() if latest.get(r) != at}
        assert not wrong and len(latest) == len(self.latest), f"telemetry_at (stored, produced) differs: {wrong}"
        events = scalar(db, "SELECT count(*) FROM events WHERE stream_id IN (SELECT rack_id FROM racks)")
        assert events == self.lifecycle_events, f"{events} lifecycle events stored, {self.lifecycle_events} produced"
        gaps = query(db, "SELECT stream_id, min(stream_version), max(stream_version), count(*) FROM events"
                         " GROUP BY stream_id HAVING min(stream_version) <> 1 OR max(stream_version) <> count(*)"
                         " LIMIT 5")
        assert gaps == [], f"stream versions not contiguous from 1: {gaps}"
        racks = scalar(db, "SELECT count(*) FROM rack_state")
        assert racks == len(self.sim.racks), f"{racks} racks in rack_state, {len(self.sim.racks)} simulated"
        letters = self.open_letters()
        assert letters == self.bad, f"open dead letters {dict(letters)}, bad input produced {dict(self.bad)}"


class Pacer:
    """Produce telemetry cycles from a thread, `per_second` cycles a second, until stopped or done."""

    def __init__(self, fleet: Fleet, cycles: int, per_second: float, chunk: int = 1) -> None:
        self.fleet = fleet
        self.cycles = cycles
        self.per_second = per_second
        self.chunk = chunk
        self.done = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pacer", daemon=True)

    def __enter__(self) -> Pacer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def finish(self, timeout: float = 120) -> None:
        """Wait until every cycle is produced (and acknowledged by the broker)."""
        self._thread.join(timeout=timeout)
        if self.error is not None:
            raise self.error
        assert self.done == self.cycles, f"produced {self.done} of {self.cycles} cycles"

    def _run(self) -> None:
        fleet = self.fleet
        try:
            with Publisher(fleet.tenant.kafka_bootstrap, fleet.tenant.topics, client_id="pacer") as publisher:
                began = time.monotonic()
                while self.done < self.cycles and not self._stop.is_set():
                    n = min(self.chunk, self.cycles - self.done)
                    messages = fleet.telemetry(n)
                    publisher.send_all(messages)
                    publisher.flush()
                    fleet._account(messages)
                    self.done += n
                    ahead = began + self.done / self.per_second - time.monotonic()
                    if ahead > 0:
                        self._stop.wait(ahead)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc


# -- a worker seen from outside ---------------------------------------------------------------------


def worker_env(tenant: Any, tmp_path: Path) -> dict[str, str]:
    """The tenant's environment for a worker, its state directory (Faust's files) in the test's `tmp_path`."""
    return {**tenant.env, "TWIN_STATE_DIR": str(tmp_path / "state")}


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def scrape(port: int, path: str = "/metrics") -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read().decode()


def probe(port: int, path: str) -> tuple[int, str]:
    """(status, body) of a worker page; a refused connection is (0, reason)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
        return 0, str(err)


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of metric `name` in a Prometheus text page, keyed by its sorted labels."""
    out = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match["labels"] or "")))
            out[labels] = float(match["value"])
    return out


def assigned(port: int, topic: str) -> set[int]:
    """Partitions of `topic` the worker says it consumes (its own consumer's assignment)."""
    try:
        page = scrape(port)
    except OSError:
        return set()
    return {int(dict(labels)["partition"]) for labels, value in samples(page, "twin_assigned_partitions").items()
            if dict(labels)["topic"] == topic and value == 1}


def kafka_committed(tenant: Any) -> dict[tuple[str, int], int]:
    """The consumer group's committed offsets on the broker (next offset to read, per partition)."""
    group = tenant.env["TWIN_WORKER_ID"]
    consumed = (tenant.topics.telemetry, tenant.topics.lifecycle, tenant.topics.intent)
    partitions = [TopicPartition(topic, p) for topic, n in tenant.topics.partition_counts().items() if topic in consumed
                  for p in range(n)]
    admin = KafkaAdminClient(bootstrap_servers=tenant.kafka_bootstrap, client_id="test-offsets")
    try:
        found = admin.list_group_offsets({group: partitions})[group]
    finally:
        admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in found.items() if meta.offset >= 0}


def tracked(tenant: Any) -> dict[tuple[str, int], int]:
    """The offsets whose effects the database holds (highest applied offset, per partition)."""
    rows = query(tenant.database_url, 'SELECT topic, partition, "offset" FROM consumer_offsets WHERE group_id = %s',
                 (tenant.env["TWIN_WORKER_ID"],))
    return {(t, p): o for t, p, o in rows}


class RssSampler:
    """Sample a process's resident memory from a thread; `peak` in bytes."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            self.samples.append(rss)
            self.peak = max(self.peak, rss)
            self._stop.wait(self.every)
