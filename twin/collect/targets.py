"""The targets file: which Redfish endpoints to poll, what each measures, how to log in.

    collector: hall-1-redfish          # the report's `source`
    interval_seconds: 10
    concurrency: 16                    # endpoints polled at once
    endpoints:
      - name: bmc-r01                  # how dead letters and stale reasons name it
        url: https://10.1.2.3
        kind: bmc                      # bmc | cdu | pdu
        racks: [r01]                   # racks it measures (a CDU: the racks it feeds)
        credentials: {username_env: BMC_USER, password_file: /run/secrets/bmc-r01}
        auth: session                  # session (real BMCs) | basic
      - name: cdu-3
        url: https://10.1.9.1
        kind: cdu
        racks: [r01, r02]
        connectors: {r01: A, r02: B}   # the SecondaryCoolantConnector feeding each rack
        credentials: {username: monitor, password_env: CDU_PASSWORD}

Why credentials are references: the file is checked in or templated, secrets are not. They are
read from the environment or a secret file at start, held as `SecretStr`, and never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from schemas.envelope import RACK_ID_PATTERN
from twin.errors import CollectorError

__all__ = ["Credentials", "Endpoint", "Kind", "Targets", "TargetsError", "load_targets"]

Kind = Literal["bmc", "cdu", "pdu"]
MAX_RACKS = 10_000
"""Racks one collector reports on: a report's readings are bounded by the contract."""
RackId = Annotated[str, Field(pattern=RACK_ID_PATTERN)]


class TargetsError(CollectorError):
    """Raised when the targets file cannot be read, or says something impossible."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Credentials(_Model):
    """Where an endpoint's user name and password come from (each from exactly one place)."""

    username: str | None = Field(default=None, description="A user name written in the file (not a secret).")
    username_env: str | None = Field(default=None, description="Environment variable holding the user name.")
    password_env: str | None = Field(default=None, description="Environment variable holding the password.")
    password_file: Path | None = Field(default=None, description="File holding the password (trailing newline cut).")

    @model_validator(mode="after")
    def _one_source_each(self) -> Credentials:
        if (self.username is None) == (self.username_env is None):
            raise ValueError("give the user name as exactly one of `username` or `username_env`")
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give the password as exactly one of `password_env` or `password_file`")
        return self

    def resolve(self, environ: Mapping[str, str] | None = None) -> tuple[str, SecretStr]:
        """(user name, password); raises TargetsError naming the missing variable or file, never a value."""
        env = os.environ if environ is None else environ
        if self.username_env is not None:
            if self.username_env not in env:
                raise TargetsError(f"environment variable {self.username_env} (user name) is not set")
            user = env[self.username_env]
        else:
            user = self.username or ""
        if self.password_env is not None:
            if self.password_env not in env:
                raise TargetsError(f"environment variable {self.password_env} (password) is not set")
            return user, SecretStr(env[self.password_env])
        assert self.password_file is not None
        try:
            return user, SecretStr(self.password_file.read_text().rstrip("\r\n"))
        except OSError as exc:
            raise TargetsError(f"cannot read the password file {self.password_file}: {exc.strerror}") from None


class Endpoint(_Model):
    """One Redfish service: a BMC, a CDU or a rack PDU, and the racks behind it."""

    name: str = Field(pattern=RACK_ID_PATTERN, description="Unique name; dead letters and stale reasons use it.")
    url: str = Field(pattern=r"^https?://[^\s/]+/?$", description="Scheme and host[:port] of the service.")
    kind: Kind
    racks: tuple[RackId, ...] = Field(min_length=1, description="Racks it measures (a CDU: the racks it feeds).")
    credentials: Credentials | None = Field(default=None, description="None: the service needs no login.")
    auth: Literal["basic", "session"] = Field(default="session", description="Redfish session (default) or basic.")
    timeout_seconds: float = Field(default=5.0, gt=0, le=120, description="Per request.")
    ca_file: Path | None = Field(default=None, description="CA bundle to verify https; without it, not verified.")
    resource: str | None = Field(
        default=None, description="Member to read (Chassis, CDU or RackPDU id); default: every member.")
    cooling_unit_id: str | None = Field(
        default=None, pattern=RACK_ID_PATTERN, description="A CDU's id in the twin; default: the endpoint's name.")
    connectors: dict[RackId, str] = Field(
        default_factory=dict, description="CDU: rack -> SecondaryCoolantConnector id feeding it.")

    @model_validator(mode="after")
    def _connectors_are_for_cdus(self) -> Endpoint:
        if self.connectors and self.kind != "cdu":
            raise ValueError("`connectors` applies to a cdu only")
        unknown = sorted(set(self.connectors) - set(self.racks))
        if unknown:
            raise ValueError(f"connectors name racks not in `racks`: {', '.join(unknown)}")
        return self

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")


class Targets(_Model):
    """The whole file: the collector's identity and pace, and its endpoints."""

    collector: str = Field(default="redfish-collector", min_length=1, max_length=128,
                           description="Source name on every report.")
    interval_seconds: float = Field(default=10.0, gt=0, description="One poll cycle (one report) every this often.")
    concurrency: int = Field(default=16, ge=1, le=1024, description="Endpoints polled at once.")
    retries: int = Field(default=2, ge=0, le=10, description="Retries of an unanswered request, with backoff.")
    backoff_seconds: float = Field(default=0.5, ge=0, le=60,
                                   description="First retry's wait; doubles each retry, with full jitter.")
    endpoints: tuple[Endpoint, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_unique(self) -> Targets:
        seen: set[str] = set()
        twice = sorted({e.name for e in self.endpoints if e.name in seen or seen.add(e.name)})  # type: ignore[func-returns-value]
        if twice:
            raise ValueError(f"endpoint names must be unique; repeated: {', '.join(twice)}")
        racks = len({r for e in self.endpoints for r in e.racks})
        if racks > MAX_RACKS:
            raise ValueError(f"{racks} racks: one collector's report holds at most {MAX_RACKS:,}; split the file")
        return self


def load_targets(path: Path) -> Targets:
    """Read a targets file (YAML, or JSON which is YAML too); TargetsError says what to fix."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TargetsError(f"cannot read the targets file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise TargetsError(f"{path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    try:
        return Targets.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise TargetsError(f"{path}: {problems}") from None
