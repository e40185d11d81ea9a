"""Serialised answers kept by what they depend on, so a repeated fleet-wide question costs a lookup.

Why: the whole fleet's headroom is 4,500 rows (1.6 MB of JSON) and the fleet summary by row tens
of thousands of cube rows; building them again for every request made them miss their 50 ms p99
at 100,000 racks (bench/api.py), while what they read changes only when the summary tables are
rebuilt (every TWIN_API_SUMMARY_SECONDS) or a facility's registration changes.

An entry's key is the question (route, the caller's owner scope, its parameters) and the
`twin.store.queries.AnswerSources` it was read under: the summary tables' rebuild time (the
`summarised_at` the answer already states) and the places version (migration 0060). A request
first reads the current sources; an entry made under others is never served, so a cached answer
is never older than its own `summarised_at` says, and a partner's owner is part of every key, so
one partner's answer cannot reach another token. The answer is kept without its freshness, which
is read and added on every request (`with_freshness`).

After the summary tables are rebuilt, the API's upkeep thread answers again the questions asked
lately (`warm`), so the first request after a rebuild is a lookup too, not a rebuild of 4,500 rows.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import psycopg
import structlog
from pydantic import BaseModel

from twin.store import queries

__all__ = ["AnswerCache", "serialise_without_freshness", "with_freshness"]

_FRESHNESS = b',"freshness":'

log = structlog.get_logger(__name__)

Conn = psycopg.Connection[dict[str, Any]]
Compute = Callable[[Conn], BaseModel]
"""Reads the answer to one question on a connection (a request's, or the upkeep thread's when warming)."""


class AnswerCache:
    """Least-recently-used serialised answers, bounded in bytes; safe to share between request threads."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, warm_questions: int = 64,
                 warm_seconds: float = 600.0) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self.warm_questions, self.warm_seconds = warm_questions, warm_seconds
        self._asked: OrderedDict[Hashable, tuple[Compute, float]] = OrderedDict()
        self._newest: queries.AnswerSources | None = None

    def answer(self, conn: Conn, question: Hashable | None, compute: Compute) -> bytes:
        """The serialised answer (without freshness) to `question`: kept under the current sources,
        read by `compute` on a miss. `question` holds all the answer depends on besides the
        sources (route, owner scope, parameters); None: it reads something live, never kept."""
        if question is None:
            return serialise_without_freshness(compute(conn))
        with self._lock:
            self._asked[question] = (compute, time.monotonic())
            self._asked.move_to_end(question)
            while len(self._asked) > self.warm_questions:
                self._asked.popitem(last=False)
        sources = queries.answer_sources(conn)
        if sources is None:  # the summaries outlived their bound: the query rebuilds them first
            return serialise_without_freshness(compute(conn))
        body = self.get((question, sources))
        return body if body is not None else self._fill(conn, question, sources, compute)

    def _fill(self, conn: Conn, question: Hashable, sources: queries.AnswerSources, compute: Compute) -> bytes:
        """Read the answer and keep it, unless the sources moved while it was read (it would then be
        filed under sources older than what it reflects; the next request reads it again)."""
        body = serialise_without_freshness(compute(conn))
        if queries.answer_sources(conn) == sources:
            self.put((question, sources), body)
            self._drop_older_than(sources)
        return body

    def _drop_older_than(self, sources: queries.AnswerSources) -> None:
        """Entries under sources older than `sources` can never be served again: free their memory now
        rather than when the byte bound pushes them out."""
        with self._lock:
            if self._newest is not None and sources <= self._newest:
                return
            self._newest = sources
            for key in [k for k in self._entries if isinstance(k, tuple) and k[-1] != sources]:
                self._bytes -= len(self._entries.pop(key))

    def sources_held(self) -> set[Any]:
        """The sources the kept answers were read under (one, unless a rebuild is being caught up with)."""
        with self._lock:
            return {k[-1] for k in self._entries if isinstance(k, tuple)}

    def warm(self, conn: Conn) -> int:
        """Answer again, under the current sources, the questions asked in the last `warm_seconds`
        that have no answer under them yet; returns how many were read. A question that now fails
        (e.g. its facility is gone) is forgotten: its next request gets the error."""
        sources = queries.answer_sources(conn)
        if sources is None:
            return 0
        now, read = time.monotonic(), 0
        with self._lock:
            asked = list(self._asked.items())
        for question, (compute, at) in asked:
            if now - at > self.warm_seconds or (question, sources) in self._entries:
                continue
            try:
                self._fill(conn, question, sources, compute)
                read += 1
            except Exception as exc:  # noqa: BLE001 -- one question's failure does not stop the others
                log.info("cached question not warmed; forgotten", question=str(question), error=str(exc))
                with self._lock:
                    self._asked.pop(question, None)
        return read

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._entries.get(key)
            if body is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = body
            self._bytes += len(body)
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)


def serialise_without_freshness(answer: BaseModel) -> bytes:
    """The answer's JSON with its last field, `freshness`, left out (added per request by `with_freshness`)."""
    fields = list(type(answer).model_fields)
    if fields[-1] != "freshness":
        raise TypeError(f"{type(answer).__name__} must end with its freshness field to be cached")
    return answer.model_dump_json(exclude={"freshness"}).encode()


def with_freshness(body: bytes, freshness: BaseModel | None) -> bytes:
    """`body` (from `serialise_without_freshness`) with `"freshness": ...` as its last field: the same
    bytes as serialising the whole answer with it."""
    tail = b"null" if freshness is None else freshness.model_dump_json().encode()
    return b"".join((body[:-1], _FRESHNESS, tail, b"}"))

