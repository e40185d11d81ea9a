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
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from pydantic import BaseModel

__all__ = ["AnswerCache", "serialise_without_freshness", "with_freshness"]

_FRESHNESS = b',"freshness":'


class AnswerCache:
    """Least-recently-used serialised answers, bounded in bytes; safe to share between request threads."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

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

