"""Where the read verbs get their answers: the database through the shared queries, or the API.

By default a verb reads the twin database directly, through `twin.store.queries`, the very
functions the HTTP API serves. With TWIN_API_URL (and TWIN_API_TOKEN) set, it asks the API
through `twin.client` instead, so a partner or a laptop without database access uses the
same verbs, scoped by its token. Both sources have the client's method names and answer
with the same models, freshness included; "not found" is None from either.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from twin.errors import TwinError

__all__ = ["DatabaseAnswers", "answers"]


class DatabaseAnswers:
    """The client's questions answered from the database, as the API answers them (with freshness)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _fresh(self, answer: Any) -> Any:
        from twin.store import queries

        return None if answer is None else answer.model_copy(update={"freshness": queries.freshness(self.conn)})

    def fleet_summary(self, group_by: Sequence[str] = ("facility", "generation")) -> Any:
        from twin.store import queries

        return self._fresh(queries.fleet_summary(self.conn, group_by=group_by))

    def headroom(self, level: str = "row", facility: str | None = None, window_minutes: int = 15) -> Any:
        from twin.store import queries

        return self._fresh(queries.headroom(self.conn, level=level, facility=facility, window_minutes=window_minutes))

    def place(self, generation: str, count: int, facility: str | None = None) -> Any:
        from twin.store import queries

        return self._fresh(queries.place(self.conn, generation=generation, count=count, facility=facility))

    def racks(self, **filters: Any) -> Any:
        from twin.store import queries

        return self._fresh(queries.list_racks(self.conn, **filters))

    def rack(self, rack_id: str) -> Any:
        from twin.store import queries

        return self._fresh(queries.rack(self.conn, rack_id))

    def rack_history(self, rack_id: str) -> Any:
        from twin.store import queries

        return self._fresh(queries.rack_history(self.conn, rack_id))

    def rack_as_of(self, rack_id: str, at: datetime) -> Any:
        from twin.store import queries

        return self._fresh(queries.rack_as_of(self.conn, rack_id, at))

    def rollout(self, facility: str | None = None) -> Any:
        from twin.store import queries

        return self._fresh(queries.rollout(self.conn, facility=facility))

    def scorecard(self, generation: str | None = None) -> Any:
        from twin.store import queries

        return self._fresh(queries.scorecard(self.conn, generation=generation))

    def intents(self, generation: str | None = None) -> Any:
        from twin.store import queries

        return self._fresh(queries.intent_revisions(self.conn, generation=generation))

    def intent(self, generation: str, revision: int | None = None) -> Any:
        from twin.store import queries

        return self._fresh(queries.intent_revision(self.conn, generation, revision))

    def valid_generations(self) -> list[str]:
        from twin.store import queries

        return queries.valid_values(self.conn, "generation")


class ApiAnswers:
    """The same questions asked over HTTP with `twin.client`; a 404 is None, as from the database."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        from twin.client import NotFound

        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except NotFound:
                return None

        return call

    def valid_generations(self) -> list[str]:
        return sorted({r.generation for r in self.client.intents().revisions})


@contextmanager
def answers() -> Iterator[Any]:
    """The answer source the settings name: the API at TWIN_API_URL, else the database."""
    from twin.commands import database, fail, settings

    s = settings()
    if s.api_url:
        from twin.client import TwinClient

        if s.api_token is None:
            fail("TWIN_API_URL is set but TWIN_API_TOKEN is not: create one with `twin token create NAME`")
        try:
            with TwinClient(s.api_url, s.api_token.get_secret_value()) as client:
                yield ApiAnswers(client)
        except TwinError as exc:
            fail(exc)
    else:
        with database() as conn:
            yield DatabaseAnswers(conn)
