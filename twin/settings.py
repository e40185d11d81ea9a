"""Every address and knob, from the environment (`TWIN_*`) or secret files.

The same code runs against the embedded stack and against production Kafka and TimescaleDB:
only these settings differ. Secrets (a database URL with a password, the Kafka SASL password)
come from the environment, from a file named by `TWIN_<NAME>_FILE` (Docker and Kubernetes
secrets mounted as files), or from a file called `TWIN_<NAME>` in the folder `TWIN_SECRETS_DIR`;
they are never logged: `redacted()` is what logs and `twin settings` show.

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
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import platformdirs
import psycopg.conninfo
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from twin.errors import SettingsError

__all__ = ["ADDRESS_VARIABLES", "KafkaSecurity", "SecretFileSettings", "Settings", "SettingsError", "Topics",
           "address_hint", "address_source", "get_settings"]

ADDRESS_VARIABLES = ("TWIN_KAFKA_BOOTSTRAP", "TWIN_DATABASE_URL")
"""Either of these set: the caller chose its broker and database, no stack is looked for."""


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir("fleet-twin", appauthor=False))


# --- Secure transport and secret files (production deployment, issue 14) ---------------------

SECRETS_DIR_ENV = "TWIN_SECRETS_DIR"


class _SecretFiles(PydanticBaseSettingsSource):
    """Values read from files: `TWIN_<NAME>_FILE=/path` (Docker and Kubernetes secrets mounted as
    files), or a file named `TWIN_<NAME>` in the folder `TWIN_SECRETS_DIR` (a Kubernetes Secret
    mounted as a volume). A variable set directly wins over both; a trailing newline is dropped."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.settings_cls.model_config.get("env_prefix", ""))
        folder = os.environ.get(SECRETS_DIR_ENV)
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            env = f"{prefix}{name}".upper()
            path = os.environ.get(f"{env}_FILE")
            if path is None and folder and (Path(folder) / env).is_file():
                path = str(Path(folder) / env)
            if path is not None:
                try:
                    values[name] = Path(path).read_text().removesuffix("\n").removesuffix("\r")
                except OSError as err:
                    raise SettingsError(f"bad setting {env}_FILE: {path!r} cannot be read: {err.strerror}") from None
        return values


class SecretFileSettings(BaseSettings):
    """Settings that may also come from secret files (`_SecretFiles`); the environment wins."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _SecretFiles(settings_cls), dotenv_settings, file_secret_settings


KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
PostgresSslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class KafkaSecurity(SecretFileSettings):
    """How every Kafka client of the twin (Faust, aiokafka, kafka-python) authenticates and
    encrypts: Kafka's own `security.protocol` words. twin/kafka_security.py turns this into
    each client's configuration; the embedded broker (Tansu) speaks PLAINTEXT only."""

    model_config = SettingsConfigDict(env_prefix="TWIN_KAFKA_", extra="ignore")

    security_protocol: KafkaProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).")
    sasl_mechanism: SaslMechanism = Field(default="SCRAM-SHA-512", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    sasl_username: str | None = Field(default=None, description="SASL user (SASL_* protocols).")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password (SASL_* protocols); a secret.")
    ssl_cafile: Path | None = Field(default=None, description="CA bundle (PEM) that signed the brokers' "
                                    "certificates [default: the system's trust store].")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (PEM), for brokers that "
                                      "require mutual TLS.")
    ssl_keyfile: Path | None = Field(default=None, description="Private key (PEM) of the client certificate.")
    ssl_key_password: SecretStr | None = Field(default=None, description="Password of the private key; a secret.")

    @classmethod
    def plaintext(cls) -> KafkaSecurity:
        """No TLS, no SASL, whatever the environment says: the embedded broker (Tansu) speaks only this."""
        return cls.model_construct()

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(f"TWIN_KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs TWIN_KAFKA_SASL_USERNAME "
                             "and TWIN_KAFKA_SASL_PASSWORD (or TWIN_KAFKA_SASL_PASSWORD_FILE)")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("TWIN_KAFKA_SSL_CERTFILE and TWIN_KAFKA_SSL_KEYFILE go together (mutual TLS)")
        if not self.uses_tls and (self.ssl_cafile or self.ssl_certfile):
            raise ValueError(f"TLS files are set but TWIN_KAFKA_SECURITY_PROTOCOL={self.security_protocol}: "
                             "use SSL or SASL_SSL")
        return self

    def redacted(self) -> dict[str, object]:
        """What may be shown: the protocol, mechanism, user and file paths; never a password."""
        shown: dict[str, object] = {"kafka_security_protocol": self.security_protocol}
        if self.uses_sasl:
            shown |= {"kafka_sasl_mechanism": self.sasl_mechanism, "kafka_sasl_username": self.sasl_username,
                      "kafka_sasl_password": "***"}
        if self.uses_tls:
            shown |= {"kafka_ssl_cafile": str(self.ssl_cafile or "(system trust store)"),
                      "kafka_ssl_certfile": str(self.ssl_certfile or "-"), "kafka_ssl_keyfile": str(self.ssl_keyfile or "-")}
        return shown


def with_database_tls(url: str, sslmode: str | None, sslrootcert: Path | None, password: str | None) -> str:
    """The libpq URL (or key=value string) with `sslmode`, `sslrootcert` and a password (kept apart
    as a secret) put in, so that every connection the twin opens (psycopg takes it as it is) uses them."""
    extra = {k: v for k, v in (("sslmode", sslmode), ("sslrootcert", sslrootcert and str(sslrootcert)),
                               ("password", password)) if v}
    if "://" not in url:
        return psycopg.conninfo.make_conninfo(url, **extra)
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in extra]
    return urlunsplit(parts._replace(query=urlencode(query + list(extra.items()), safe="/")))


# --- end of secure transport and secret files --------------------------------------------------


class Topics(BaseSettings):
    """Topic names and partition counts (created up front: Tansu auto-creates with its own default)."""

    model_config = SettingsConfigDict(env_prefix="TWIN_TOPIC_", extra="ignore")

    telemetry: str = "fleet.telemetry.v1"
    lifecycle: str = "fleet.lifecycle.v1"
    intent: str = "fleet.intent.v1"
    deadletter: str = "fleet.deadletter.v1"
    deviations: str = "fleet.deviations.v1"
    alerts: str = "fleet.alerts.v1"
    partitions: int = Field(default=4, ge=1, description="Partitions of telemetry and lifecycle (scale-out unit).")

    def partition_counts(self) -> dict[str, int]:
        """Intent is one partition: facility, intent and plan revisions must stay in order."""
        return {
            self.telemetry: self.partitions,
            self.lifecycle: self.partitions,
            self.intent: 1,
            self.deadletter: 1,
            self.deviations: self.partitions,
            self.alerts: 1,  # alert transitions stay in the order the one active engine made them
        }


class Settings(SecretFileSettings):
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

    # --- secure transport (issue 14): Kafka TLS/SASL and PostgreSQL TLS ---
    kafka_security: KafkaSecurity = Field(default_factory=KafkaSecurity)
    database_sslmode: PostgresSslMode | None = Field(
        default=None, description="libpq sslmode; verify-full in production [default: what the URL says, else prefer].")
    database_sslrootcert: Path | None = Field(default=None, description="CA file (PEM) that signed the server's "
                                              "certificate (verify-ca, verify-full).")
    database_password: SecretStr | None = Field(
        default=None, description="Database password, kept out of the URL (use TWIN_DATABASE_PASSWORD_FILE).")

    @model_validator(mode="after")
    def _database_tls_in_url(self) -> Settings:
        """Fold sslmode, the CA file and the password into the URL every connection is opened with."""
        if self.database_sslmode or self.database_sslrootcert or self.database_password:
            password = self.database_password.get_secret_value() if self.database_password else None
            self.database_url = SecretStr(with_database_tls(self.database_url.get_secret_value(),
                                                            self.database_sslmode, self.database_sslrootcert, password))
        return self
    # --- end of secure transport ---

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
    prefix = {Topics.__name__: "TWIN_TOPIC_", KafkaSecurity.__name__: "TWIN_KAFKA_"}.get(exc.title, "TWIN_")
    for error in exc.errors(include_url=False):
        loc = [str(p) for p in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if not loc:  # a check of several settings together: its message names them
            problems.append(message)
            continue
        variable = ("TWIN_TOPIC_" + loc[1] if loc[:1] == ["topics"] and len(loc) > 1 else prefix + loc[0]).upper()
        shown = "" if "database_url" in loc or "password" in variable.lower() else f"={error.get('input')!r}"
        problems.append(f"{variable}{shown}: {message}")
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
