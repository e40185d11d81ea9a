"""Memory a telemetry worker holds per twin, and memory it hands back between batches."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from streams import memory
from twin.domain.components import EMPTY_BOM
from twin.domain.rack import RackTwin


def _resident() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@pytest.mark.skipif(memory._TRIM is None or not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_free_memory_in_the_middle_of_the_heap_goes_back_to_the_system() -> None:
    blocks = [(b"%08d" % i) * 8192 for i in range(1500)]  # 64 KiB each: glibc's heap, not an mmap of its own
    top = blocks.pop()  # still held: the heap cannot hand the rest back by shrinking from its end
    del blocks
    gc.collect()
    before = _resident()
    assert memory.release_free_memory()
    assert before - _resident() > 32 * 1024 * 1024
    assert top


def test_releasing_memory_is_harmless_when_there_is_none_to_release() -> None:
    memory.release_free_memory()
    assert memory.release_free_memory() in (True, False)


def test_a_twin_loaded_without_parts_shares_the_empty_bill_of_materials() -> None:
    snapshot = RackTwin("r-1").snapshot()
    assert RackTwin.from_snapshot(snapshot).bom is EMPTY_BOM
    assert RackTwin.from_snapshot(snapshot) == RackTwin("r-1")
