"""`twin clean`: remove the demo, worker-scratch and test state the twin leaves on disk.

Why: every `twin demo` keeps an embedded PostgreSQL data directory (hundreds of MB) under
the user data directory, every worker a small Faust directory per consumer group, and test
or benchmark runs that were killed leave their stacks in the temp directory. Nothing that a
running stack or any live process uses is touched, and nothing goes without a yes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from twin.commands import MAINTAIN, StateDir, console, fail, settings

app = typer.Typer()

TEMP_PREFIXES = ("twin-test-stack-", "bench-ingest-")
"""Temp-directory stacks of the test session (tests/conftest.py) and of bench/ingest.py."""
STARTING_GRACE_S = 120.0
"""A temp directory younger than this may belong to a run that is starting its stack: kept."""
UP_STATE = ("postgres", "postgres.initdb", "logs", "stack.json")
"""What `twin up` keeps directly in the state directory (only removed with --all)."""


@dataclass(frozen=True)
class Leftover:
    """One directory (or `twin up` file) that `twin clean` may remove."""

    path: Path
    what: str
    bytes: int


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    total = 0
    for root, _, files in os.walk(path, onerror=lambda _: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _used_paths() -> list[Path]:
    """Working directories and open files of every live process we may inspect."""
    import psutil

    used: list[Path] = []
    for proc in psutil.process_iter():
        try:
            used.append(Path(proc.cwd()))
            used.extend(Path(f.path) for f in proc.open_files())
        except (psutil.Error, OSError):
            continue
    return used


def in_use(path: Path, used: list[Path]) -> bool:
    """A running stack records `path` (or a directory in it), or a live process works or has a file open in it."""
    from twin.embedded.stack import read_stack

    if path.is_dir():
        if read_stack(path) is not None:
            return True
        try:
            if any(read_stack(child) is not None for child in path.iterdir() if child.is_dir()):
                return True
        except OSError:
            return True
    resolved = path.resolve()
    return any(p == resolved or resolved in p.parents for p in used)


def leftovers(state_dir: Path, temp_dir: Path, *, include_up: bool) -> Iterator[Leftover]:
    """Everything `twin clean` would consider, whether in use or not."""
    demo = state_dir / "demo"
    if demo.is_dir():
        yield Leftover(demo, "demo database (twin demo)", _size(demo))
    faust = state_dir / "faust"
    if faust.is_dir():
        for worker in sorted(p for p in faust.iterdir() if p.is_dir()):
            yield Leftover(worker, "worker scratch (twin worker)", _size(worker))
    if include_up:
        for name in UP_STATE:
            if (state_dir / name).exists():
                yield Leftover(state_dir / name, "stack state (twin up)", _size(state_dir / name))
    now = time.time()
    for p in sorted(temp_dir.iterdir()) if temp_dir.is_dir() else ():
        if p.is_dir() and p.name.startswith(TEMP_PREFIXES):
            try:
                young = now - p.stat().st_mtime < STARTING_GRACE_S
            except OSError:
                continue
            if not young:
                yield Leftover(p, "test or benchmark stack", _size(p))


def _mb(n: int) -> str:
    return f"{n / 1_000_000:,.1f} MB"


@app.command(rich_help_panel=MAINTAIN)
def clean(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Remove without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    include_up: Annotated[bool, typer.Option("--all", help="Also remove the database of `twin up` "
                                             "(its postgres/ and logs/ in the state directory).")] = False,
    state_dir: StateDir = None,
) -> None:
    """Remove demo databases, worker scratch and leftover test stacks that no running process uses.

    Looks in the state directory (TWIN_STATE_DIR, else the user data directory): demo/ and
    faust/*, plus twin-test-stack-* and bench-ingest-* in the temp directory. Whatever a
    running stack or a live process uses is kept and said so. Asks first unless --yes.
    """
    s = settings(state_dir)
    temp_dir = Path(tempfile.gettempdir())
    found = list(leftovers(s.state_dir, temp_dir, include_up=include_up))
    used = _used_paths()
    busy = [x for x in found if in_use(x.path, used)]
    free = [x for x in found if x not in busy]
    for x in busy:
        console.print(f"kept (in use)  {x.path}  [dim]{x.what}, {_mb(x.bytes)}[/]", highlight=False, soft_wrap=True)
    if not free:
        console.print(f"nothing to remove in {s.state_dir} or {temp_dir}", highlight=False, soft_wrap=True)
        return
    total = sum(x.bytes for x in free)
    for x in free:
        console.print(f"{'would remove' if dry_run else 'remove'}  {x.path}  [dim]{x.what}, {_mb(x.bytes)}[/]",
                      highlight=False, soft_wrap=True)
    if dry_run:
        console.print(f"would free {_mb(total)} in {len(free)} place(s)")
        return
    if not yes:
        if not sys.stdin.isatty():
            fail("not a terminal, so no one can confirm: pass --yes to remove, or --dry-run to only list")
        if not typer.confirm(f"remove {len(free)} place(s), {_mb(total)}?", default=False):
            console.print("nothing removed")
            raise typer.Exit(1)
    removed, freed = 0, 0
    for x in free:
        if x.path.is_dir() and not x.path.is_symlink():
            shutil.rmtree(x.path, ignore_errors=True)
        else:
            x.path.unlink(missing_ok=True)
        if x.path.exists():
            console.print(f"[yellow]could not remove[/] {x.path}", highlight=False, soft_wrap=True)
        else:
            removed, freed = removed + 1, freed + x.bytes
    console.print(f"removed {removed} place(s), {_mb(freed)}", highlight=False, soft_wrap=True)
