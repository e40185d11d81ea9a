"""Structured logs (structlog): key=value on a terminal, JSON lines where a machine reads them.

Configured once per process by its entry point (`twin` CLI, the worker). Nothing logs a
secret: settings are logged through `Settings.redacted()`.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog

__all__ = ["Repeats", "configure", "quiet_repeats"]


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is now, not the stream it was at `configure`: a CLI run
    inside another process (typer's CliRunner in tests) swaps stderr and closes its copy after.

    Except when stderr has been turned into a logger (Faust's worker redirects it through
    `mode.utils.logging.FileLogProxy`): our lines are already rendered, and going through that
    logger would wrap each one, as a string, in a record of its own."""

    @staticmethod
    def _stream() -> Any:
        stream = sys.stderr
        if type(stream).__name__ == "FileLogProxy" or getattr(stream, "closed", False):
            return sys.__stderr__
        return stream

    def write(self, text: str) -> int:
        return self._stream().write(text)

    def flush(self) -> None:
        self._stream().flush()


def configure(level: str = "info", *, json: bool | None = None) -> None:
    """Route structlog to stderr at `level`; JSON when stderr is not a terminal (unless told)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    as_json = (not sys.stderr.isatty()) if json is None else json
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )


_VARYING = re.compile(r"\d+")
_NOT_PART_OF_A_REPEAT = frozenset({"timestamp", "retry_in", "level", "logger"})
_KINDS_KEPT = 1_000


class Repeats:
    """Lets a failing dependency be logged once per backoff step, not once per attempt.

    The first warning of a kind passes; the same kind again (digits aside: ports, node ids,
    counts) passes only once its wait is over, saying how many were held back, and the wait
    doubles from `first_s` to `max_s`. A kind not seen for `2 * max_s` starts over. Info and
    debug lines always pass. Why: with the broker gone, aiokafka logs every reconnect attempt of
    every client, a hundred lines a second, which buries the one line that says what is wrong.
    """

    def __init__(self, first_s: float = 1.0, max_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.first_s, self.max_s, self._clock = first_s, max_s, clock
        self._kinds: dict[tuple[str, ...], list[float]] = {}  # kind -> [next allowed at, wait, held back, last seen]

    def admit(self, kind: tuple[str, ...]) -> int | None:
        """None to hold this line back; else how many like it were held back since the last one shown."""
        now = self._clock()
        if len(self._kinds) >= _KINDS_KEPT:  # forget kinds gone quiet, so a long run does not collect them
            self._kinds = {k: v for k, v in self._kinds.items() if now - v[3] <= 2 * self.max_s}
        state = self._kinds.get(kind)
        if state is None or now - state[3] > 2 * self.max_s:
            self._kinds[kind] = [now + self.first_s, self.first_s, 0, now]
            return 0
        state[3] = now
        if now < state[0]:
            state[2] += 1
            return None
        held, state[2] = int(state[2]), 0
        state[1] = min(state[1] * 2, self.max_s)
        state[0] = now + state[1]
        return held

    @staticmethod
    def kind_of(*parts: object) -> tuple[str, ...]:
        return tuple(_VARYING.sub("N", str(part))[:300] for part in parts)

    def filter_record(self, record: logging.LogRecord) -> bool:
        """A `logging` filter: library records (aiokafka, Faust, mode)."""
        if record.levelno < logging.WARNING:
            return True
        held = self.admit(self.kind_of(record.name, record.levelno, record.getMessage()))
        if held is None:
            return False
        if held:
            record.msg, record.args = f"{record.getMessage()} ({held} like it held back)", None
        return True

    def structlog_processor(self, _logger: object, method: str, event: dict[str, Any]) -> dict[str, Any]:
        """A structlog processor: our own lines (put it first in the chain)."""
        if method in ("debug", "info", "msg"):
            return event
        held = self.admit(self.kind_of(method, *(f"{k}={v}" for k, v in sorted(event.items())
                                                 if k not in _NOT_PART_OF_A_REPEAT)))
        if held is None:
            raise structlog.DropEvent
        if held:
            event["held_back"] = held
        return event


def quiet_repeats(repeats: Repeats | None = None) -> Repeats:
    """Hold back repeated warnings of this process: ours (structlog) and the libraries' (the root handlers)."""
    repeats = repeats or Repeats()
    config = structlog.get_config()
    structlog.configure(processors=[repeats.structlog_processor, *config["processors"]])
    for handler in logging.getLogger().handlers:
        handler.addFilter(repeats.filter_record)
    return repeats
