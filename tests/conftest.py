"""Fixtures shared by every test.

Integration tests share ONE embedded stack (Tansu broker and PostgreSQL) for the whole
session: starting servers per test would cost seconds each. A test that needs isolation
makes it from what the stack offers (its own topic, its own schema or database), and does
not stop or restart the shared stack; a test about the stack's own life cycle starts a
private `EmbeddedStack` in its own `tmp_path` instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from twin.stack import EmbeddedStack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """The session's broker and database, with the fleet topics created, stopped at the end."""
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as running:
        yield running
