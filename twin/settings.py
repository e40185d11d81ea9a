"""Every address and knob, from the environment (`TWIN_*`) or secret files.

The same code runs against the embedded stack and against production Kafka and TimescaleDB:
only these settings differ. Secrets (a database URL with a password) come from the
environment or a file under `TWIN_SECRETS_DIR`, and are never logged: `redacted()` is what
logs and `twin settings` show.

With neither `TWIN_KAFKA_BOOTSTRAP` nor `TWIN_DATABASE_URL` set, `get_settings()` looks for a
stack started by `twin up` in the state directory (its `stack.json`) and takes its addresses;
with none running, the defaults stand and `address_hint()` says so in the errors that follow.
A setting that cannot be read raises `SettingsError` naming the variable (one line, no
traceback, for the commands and the worker to print).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import platformdirs
import psycopg.conninfo
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from twin.errors import SettingsError

__all__ = ["ADDRESS_VARIABLES", "Settings", "SettingsError", "Topics", "address_hint", "address_source", "get_settings"]

ADDRESS_VARIABLES = ("TWIN_KAFKA_BOOTSTRAP", "TWIN_DATABASE_URL")
"""Either of these set: the caller chose its broker and database, no stack is looked for."""


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir("fleet-twin", appauthor=False))


class Topics(BaseSettings):
    """Topic names and partition counts (created up front: Tansu auto-creates with its own default)."""

    model_config = SettingsConfigDict(env_prefix="TWIN_TOPIC_", extra="ignore")

    telemetry: str = "fleet.telemetry.v1"
    lifecycle: str = "fleet.lifecycle.v1"
    intent: str = "fleet.intent.v1"
    deadletter: str = "fleet.deadletter.v1"
    deviations: str = "fleet.deviations.v1"
    partitions: int = Field(default=4, ge=1, description="Partitions of telemetry and lifecycle (scale-out unit).")

    def partition_counts(self) -> dict[str, int]:
        """Intent is one partition: facility, intent and plan revisions must stay in order."""
        return {
            self.telemetry: self.partitions,
            self.lifecycle: self.partitions,
            self.intent: 1,
            self.deadletter: 1,
            self.deviations: self.partitions,
        }


class Settings(BaseSettings):
    """Runtime configuration. Environment variables are `TWIN_` + the upper-case field name."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", extra="ignore", secrets_dir=None)

    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, comma separated.")
    database_url: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:5432/twin"), description="libpq URL of the twin database."
    )
    state_dir: Path = Field(default_factory=default_state_dir, description="Where `twin up` keeps broker/db state.")
    worker_id: str = Field(default="twin-worker", description="Faust app id, that is the consumer group.")
    worker_web_host: str = Field(default="127.0.0.1", description="Interface of the worker's web endpoints.")
    worker_web_port: int = Field(default=6066, ge=0, le=65535, description="Worker's /metrics, /healthz, /readyz.")
    batch_max_messages: int = Field(default=2000, ge=1, description="Messages per batch taken from a stream.")
    batch_within_seconds: float = Field(
        default=0.1, gt=0,
        description="Longest wait to fill a batch: a floor of event-to-twin latency (bench/ingest.py at 20,000"
                    " readings/s: p99 814 ms at 0.2 s, 488 ms at 0.1 s).",
    )
    fetch_max_wait_ms: int = Field(
        default=100, ge=0, le=1500,
        description="Longest a Kafka fetch waits for records (Faust fixes 1500; brokers that answer a fetch only"
                    " when its wait is over, as Tansu does, make this the floor of event-to-twin latency).",
    )
    telemetry_stale_seconds: float = Field(default=30.0, gt=0, description="No reading for this long: stale.")
    clock_skew_seconds: float = Field(
        default=300.0, gt=0,
        description="A reading or event dated further ahead of the worker's clock than this is refused (clock-skew).",
    )
    api_url: str | None = Field(default=None, description="When set, the CLI's read verbs ask this twin API"
                                                          " (e.g. http://127.0.0.1:8080) instead of the database.")
    api_token: SecretStr | None = Field(default=None, description="Bearer token the CLI sends to TWIN_API_URL.")
    api_host: str = Field(default="127.0.0.1", description="Interface `twin api` listens on.")
    api_port: int = Field(default=8080, ge=0, le=65535, description="Port of `twin api`.")
    api_pool_size: int = Field(default=8, ge=1, le=64, description="Database connections the API keeps.")
    api_rollup_seconds: float = Field(
        default=30.0, ge=0, description="How often the API rolls telemetry up into per-row minutes (headroom p95);"
                                        " 0 turns it off (another API replica or a cron job does it).")
    api_summary_seconds: float = Field(
        default=30.0, ge=0, description="How often the API rebuilds its summary tables (fleet summary, headroom,"
                                       " scorecard); 0 = only when a query finds them older than its bound.")
    log_level: str = Field(default="info")
    topics: Topics = Field(default_factory=Topics)

    @field_validator("database_url")
    @classmethod
    def _libpq_url(cls, value: SecretStr) -> SecretStr:
        """Refuse what libpq cannot parse now, not at the first connection (the value is never echoed)."""
        try:
            psycopg.conninfo.conninfo_to_dict(value.get_secret_value())
        except psycopg.ProgrammingError:
            raise ValueError("not a libpq URL (postgresql://user@host:port/dbname) or key=value string") from None
        return value

    def redacted(self) -> dict[str, object]:
        """Every setting, by its `TWIN_*` name less the prefix, as it may be logged: no password leaves this process."""
        out: dict[str, object] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "topics":
                out.update({f"topic_{key}": v for key, v in self.topics.model_dump().items()})
            elif name == "database_url":
                out[name] = _redact_url(self.database_url.get_secret_value())
            elif value is None:
                out[name] = "(not set)"
            elif isinstance(value, SecretStr):
                out[name] = "***" if value.get_secret_value() else ""
            elif callable(getattr(value, "redacted", None)):  # a group of settings that redacts itself
                out.update(value.redacted())
            elif isinstance(value, BaseModel):  # a group without secrets: its fields under its name
                out.update({f"{name}_{key}": v for key, v in value.model_dump(mode="json").items()})
            else:
                out[name] = str(value) if isinstance(value, Path) else value
        return out


def _redact_url(text: str) -> str:
    """The URL with its password (in the authority, or a `password` parameter) shown as ***."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" in text:
        url = urlsplit(text)
        if url.password:
            url = url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@"))
        text = urlunsplit(url)
        return re.sub(r"([?&]password=)[^&]*", r"\1***", text)
    try:
        params = psycopg.conninfo.conninfo_to_dict(text)
    except psycopg.ProgrammingError:
        return "(unreadable)"
    if "password" in params:
        params["password"] = "***"
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in params.items()})


_hint = ""
_source = "the environment"


def address_hint() -> str:
    """Why the broker and database addresses are the defaults, when that may explain a failure; else ""."""
    return _hint


def address_source() -> str:
    """Where the broker and database addresses came from: the environment, a `twin up` stack, or the defaults."""
    return _source


def _load() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    return _with_running_stack(settings)


def _describe(exc: ValidationError) -> str:
    problems = []
    prefix = "TWIN_TOPIC_" if exc.title == Topics.__name__ else "TWIN_"
    for error in exc.errors(include_url=False):
        loc = [str(p) for p in error["loc"]]
        variable = ("TWIN_TOPIC_" + loc[1] if loc[:1] == ["topics"] and len(loc) > 1 else prefix + loc[0]).upper()
        shown = "" if "database_url" in loc or "password" in variable.lower() else f"={error.get('input')!r}"
        problems.append(f"{variable}{shown}: {error['msg'].removeprefix('Value error, ')}")
    return "bad setting " + "; ".join(problems)


def _with_running_stack(settings: Settings) -> Settings:
    """The addresses of a running `twin up` stack, when the environment names no broker or database."""
    global _hint, _source
    _hint, _source = "", "the environment"
    if any(os.environ.get(name) for name in ADDRESS_VARIABLES):
        return settings
    from twin.embedded.stack import read_stack  # lazy: the stack module is heavy and imports this one

    info = read_stack(settings.state_dir)
    if info is None:
        _hint = (f"no `twin up` stack is running in {settings.state_dir} and neither "
                 f"{' nor '.join(ADDRESS_VARIABLES)} is set: start `twin up`, or set them")
        _source = f"the defaults ({_hint})"
        return settings
    _source = f"the `twin up` stack running in {settings.state_dir}"
    return settings.model_copy(update={"kafka_bootstrap": info.kafka_bootstrap,
                                       "database_url": SecretStr(info.database_url)})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once); raises `SettingsError` on a setting that cannot be read."""
    return _load()
