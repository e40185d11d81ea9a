"""Give the C heap's free memory back to the operating system between batches.

Why: a telemetry batch allocates hundreds of megabytes that live until its commit (decoded
readings, loaded snapshots, rows for the database) beside twins that live on. Python's small
object allocator keeps its own 1 MiB arenas (mmap'd, released when empty); larger blocks
(dict and list tables, message bytes, full reading windows) come from glibc's heap, which
returns only its top to the system on its own. Freed space in the middle of that heap stays
resident, and the small object allocator never reuses it, so it adds to the next batch's peak
as well. `malloc_trim(0)` releases every free page of every glibc arena (a few milliseconds for
a heap of hundreds of megabytes), which no setting does automatically.

Elsewhere (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

__all__ = ["release_free_memory"]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library: glibc has it, others do not
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS; True when the heap had any to give (glibc only)."""
    return bool(_TRIM(0)) if _TRIM is not None else False

