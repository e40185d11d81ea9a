"""Settings: every one shown, a bad one named in one line, a running `twin up` stack found without TWIN_*."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from pydantic import BaseModel

from twin.embedded.stack import STATE_FILE, StackInfo, StackProcess
from twin.settings import (
    ADDRESS_VARIABLES, Settings, SettingsError, Topics, address_hint, address_source, get_settings,
)

BIN = Path(sys.executable).parent
TWIN = str(BIN / "twin")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No TWIN_* variable, and a data directory of our own (where `twin up` would keep its state)."""
    for name in list(os.environ):
        if name.startswith("TWIN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path / "fleet-twin"
    get_settings.cache_clear()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    return {**env, **extra}


def test_a_bad_partition_count_is_named_with_its_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_TOPIC_PARTITIONS", "abc")
    with pytest.raises(SettingsError, match=r"TWIN_TOPIC_PARTITIONS='abc': Input should be a valid integer"):
        get_settings()


def test_a_garbage_database_url_is_refused_without_echoing_it(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", "garbage-with-s3cret")
    with pytest.raises(SettingsError, match="TWIN_DATABASE_URL: not a libpq URL") as caught:
        get_settings()
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("url", ["postgresql://twin:s3cret@db.example:5432/twin",
                                 "postgresql://db.example/twin?password=s3cret&sslmode=require",
                                 "host=db.example password=s3cret dbname=twin"])
def test_redacted_settings_never_show_a_password(url: str) -> None:
    shown = Settings(database_url=url).redacted()
    assert "s3cret" not in str(shown) and "***" in str(shown["database_url"])


def test_redacted_settings_name_every_setting_by_its_variable() -> None:
    shown = Settings().redacted()
    groups = {n for n, f in Settings.model_fields.items() if isinstance(getattr(Settings(), n), BaseModel)}
    assert {n for n in Settings.model_fields if n not in groups} <= set(shown)
    assert {f"topic_{n}" for n in Topics.model_fields} <= set(shown)
    assert len(set(shown) - set(Settings.model_fields)) >= len(Topics.model_fields) + len(groups) - 1


def test_twin_settings_prints_every_setting_with_its_variable(tmp_path: Path) -> None:
    out = subprocess.run([TWIN, "settings"], env=_env(XDG_DATA_HOME=str(tmp_path)), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    for name in Settings().redacted():
        assert f"(TWIN_{name.upper()})" in out.stdout, name
    assert "no `twin up` stack is running" in out.stdout


@pytest.mark.parametrize("command", [[TWIN, "settings"], [TWIN, "racks"], [TWIN, "worker"],
                                     [sys.executable, "-m", "streams", "worker"]])
@pytest.mark.parametrize(("variable", "value", "says"), [
    ("TWIN_TOPIC_PARTITIONS", "abc", "TWIN_TOPIC_PARTITIONS='abc'"),
    ("TWIN_DATABASE_URL", "garbage", "TWIN_DATABASE_URL: not a libpq URL"),
])
def test_a_bad_setting_ends_a_command_with_one_line(command: list[str], variable: str, value: str, says: str,
                                                     tmp_path: Path) -> None:
    out = subprocess.run(command, env=_env(**{variable: value, "XDG_DATA_HOME": str(tmp_path)}), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and lines[0].startswith("error:"), out.stderr


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_worker_whose_database_does_not_answer_at_start_ends_with_one_line(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/twin"
    out = subprocess.run([TWIN, "worker"], env=_env(TWIN_DATABASE_URL=url, XDG_DATA_HOME=str(tmp_path)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect to the twin database" in lines[0], out.stderr


def test_without_addresses_and_without_a_stack_commands_say_there_is_none(tmp_path: Path) -> None:
    out = subprocess.run([TWIN, "racks"], env=_env(XDG_DATA_HOME=str(tmp_path), PGCONNECT_TIMEOUT="2"),
                         capture_output=True, text=True, timeout=60)
    if out.returncode == 0:
        pytest.skip("a database answers at the default address on this machine")  # pragma: no cover
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"no `twin up` stack is running in {tmp_path / 'fleet-twin'}" in lines[0], out.stderr


def test_a_running_stack_is_found_from_its_state_file(clean_env: Path) -> None:
    me = psutil.Process()  # stands in for the stack's processes: alive, as the state file requires
    info = StackInfo(owner_pid=me.pid, kafka_bootstrap="127.0.0.1:19092", database_url="postgresql://postgres@127.0.0.1:15432/twin",
                     kafka_port=19092, postgres_port=15432,
                     processes=(StackProcess(name="tansu", pid=me.pid, create_time=me.create_time()),),
                     started_at=datetime.now(UTC))
    clean_env.mkdir(parents=True)
    (clean_env / STATE_FILE).write_text(info.model_dump_json())
    settings = get_settings()
    assert (settings.kafka_bootstrap, settings.database_url.get_secret_value()) == (info.kafka_bootstrap,
                                                                                    info.database_url)
    assert address_hint() == "" and str(clean_env) in address_source()


def test_an_address_in_the_environment_wins_over_a_running_stack(clean_env: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    me = psutil.Process()
    info = StackInfo(owner_pid=me.pid, kafka_bootstrap="127.0.0.1:19092", database_url="postgresql://x@127.0.0.1:1/twin",
                     kafka_port=19092, postgres_port=1,
                     processes=(StackProcess(name="tansu", pid=me.pid, create_time=me.create_time()),),
                     started_at=datetime.now(UTC))
    clean_env.mkdir(parents=True)
    (clean_env / STATE_FILE).write_text(info.model_dump_json())
    monkeypatch.setenv(ADDRESS_VARIABLES[0], "broker.example:9092")
    assert get_settings().kafka_bootstrap == "broker.example:9092"
    assert address_source() == "the environment"


def test_a_stale_state_file_is_no_stack(clean_env: Path) -> None:
    info = StackInfo(owner_pid=1, kafka_bootstrap="127.0.0.1:19092", database_url="postgresql://x@127.0.0.1:1/twin",
                     kafka_port=19092, postgres_port=1,
                     processes=(StackProcess(name="tansu", pid=os.getpid(), create_time=1.0),),  # a pid reused since
                     started_at=datetime.now(UTC))
    clean_env.mkdir(parents=True)
    (clean_env / STATE_FILE).write_text(info.model_dump_json())
    assert get_settings().kafka_bootstrap == Settings.model_fields["kafka_bootstrap"].default
    assert "no `twin up` stack is running" in address_hint()
