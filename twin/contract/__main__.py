"""`python -m twin.contract [--check]`: write docs/asyncapi.yaml and docs/producer-contract.md, or check them."""

from __future__ import annotations

import sys

from twin.contract import DOCS_DIR, rendered


def main(argv: list[str]) -> int:
    files = rendered()
    if "--check" in argv:
        drifted = [name for name, text in files.items()
                   if not (DOCS_DIR / name).exists() or (DOCS_DIR / name).read_text() != text]
        if drifted:
            print(f"out of date: {', '.join(drifted)}; run `python -m twin.contract`", file=sys.stderr)
            return 1
        return 0
    DOCS_DIR.mkdir(exist_ok=True)
    for name, text in files.items():
        (DOCS_DIR / name).write_text(text)
    print(f"wrote {', '.join(files)} to {DOCS_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
