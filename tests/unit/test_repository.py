"""The repository explains itself: no pointer to a file outside it, and the architecture page names every package."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEXT_FILES = ("*.py", "*.md", "*.toml", "*.yaml", "*.sql")
OUTSIDE = re.compile(r"\.\./shared|\bDESIGN\.md\b|\bSTYLE\.md\b|\bLAYOUT\.md\b")


def _files() -> list[Path]:
    skip = {".git", ".venv", "node_modules", "__pycache__"}
    return [p for pattern in TEXT_FILES for p in ROOT.rglob(pattern) if not skip & set(p.relative_to(ROOT).parts)]


def test_nothing_points_at_a_design_file_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    pointing = [str(p.relative_to(ROOT)) for p in _files() if p.resolve() != this and OUTSIDE.search(p.read_text())]
    assert pointing == []


def test_the_readme_points_at_the_architecture_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/architecture.md" in readme and (ROOT / "docs" / "architecture.md").exists()


def test_the_architecture_page_names_every_package() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    packages = sorted({p.parent.relative_to(ROOT).as_posix() for top in ("schemas", "twin", "streams")
                       for p in (ROOT / top).rglob("__init__.py") if "__pycache__" not in p.parts})
    unnamed = [pkg for pkg in packages
               if not re.search(rf"(^|[\s`/]){re.escape(pkg.rsplit('/', 1)[-1])}/", page)]
    assert unnamed == [], f"docs/architecture.md does not describe: {unnamed}"


def test_the_layout_on_the_architecture_page_is_the_code_as_it_is() -> None:
    from twin.layout import PAGE, render

    assert PAGE.read_text() == render(PAGE.read_text()), "run `python -m twin.layout`"


def test_a_new_module_shows_up_in_the_layout(tmp_path: Path) -> None:
    from twin.layout import BEGIN, END, render

    for package in ("schemas", "twin", "streams"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(f'"""The {package} package."""\n')
    (tmp_path / "streams" / "batch.py").write_text('"""Batches and tracked offsets. More detail here."""\n')
    page = render(f"# page\n{BEGIN}\nold\n{END}\nrest\n", root=tmp_path)
    assert "batch.py" in page and "Batches and tracked offsets." in page and "More detail" not in page
    assert "old" not in page and page.endswith("rest\n")


def test_no_two_test_files_share_a_name() -> None:
    """pytest imports test files by their base name (no packages here): a second one of a name stops the suite."""
    from collections import Counter

    names = Counter(p.name for p in (ROOT / "tests").rglob("test_*.py"))
    assert [name for name, n in names.items() if n > 1] == []


def test_no_file_keeps_the_markers_of_an_unresolved_merge() -> None:
    marker = re.compile(r"^(<{7}|>{7}) ", re.M)
    left = [str(p.relative_to(ROOT)) for p in _files() if marker.search(p.read_text(errors="replace"))]
    assert not left, f"merge conflict markers left in {left}"
