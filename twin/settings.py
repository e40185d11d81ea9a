"""Every address and knob, from the environment (`TWIN_*`) or secret files.

The same code runs against the embedded stack and against production Kafka and TimescaleDB:
only these settings differ. Secrets (a database URL with a password) come from the
environment or a file under `TWIN_SECRETS_DIR`, and are never logged: `redacted()` is what
logs and `--help` show.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    def redacted(self) -> dict[str, object]:
        """The settings as they may be logged: no password ever leaves this process."""
        from urllib.parse import urlsplit, urlunsplit

        url = urlsplit(self.database_url.get_secret_value())
        if url.password:
            url = url._replace(netloc=url.netloc.replace(f":{url.password}@", ":***@"))
        return {
            "kafka_bootstrap": self.kafka_bootstrap,
            "database_url": urlunsplit(url),
            "state_dir": str(self.state_dir),
            "worker_id": self.worker_id,
            "api_url": self.api_url or "(none: the CLI reads the database)",
        }


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
