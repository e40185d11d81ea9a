"""The producer contract, made from the code: AsyncAPI 3.0 (docs/asyncapi.yaml) and its human page.

`python -m twin.contract` rewrites both files; `python -m twin.contract --check` exits 1 when the
checked-in files differ from what the code says now (tests/unit/test_producer_contract.py does
the same). It lives in `twin/`, not `schemas/`, because it reads the domain (the state machine)
and the error tree, which `schemas/` must not import.
"""

from __future__ import annotations

from pathlib import Path

from twin.contract.asyncapi import document
from twin.contract.render import to_markdown, to_yaml

__all__ = ["DOCS_DIR", "document", "rendered"]

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
"""Where the checked-in contract lives in a source checkout."""


def rendered() -> dict[str, str]:
    """File name under docs/ -> its text, as the code makes it now."""
    doc = document()
    return {"asyncapi.yaml": to_yaml(doc), "producer-contract.md": to_markdown(doc)}
