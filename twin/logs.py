"""Structured logs (structlog): key=value on a terminal, JSON lines where a machine reads them.

Configured once per process by its entry point (`twin` CLI, the worker). Nothing logs a
secret: settings are logged through `Settings.redacted()`.
"""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure"]


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is now, not the stream it was at `configure`: a CLI run
    inside another process (typer's CliRunner in tests) swaps stderr and closes its copy after."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


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
