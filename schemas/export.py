"""Export every contract as a JSON Schema file under `schemas/json/` (checked in).

Run `python -m schemas.export` after changing a model (then `python -m twin.contract`, which
puts the same schemas into docs/asyncapi.yaml); `tests/unit/test_contracts.py` fails while
the files and the models disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas import ALL_TYPES, AlertChanged, DeadLetter, DeviationChanged

JSON_DIR = Path(__file__).parent / "json"


def rendered() -> dict[str, str]:
    """File name -> JSON Schema text, for every event type and the emitted records."""
    models = {**ALL_TYPES, DeviationChanged.TYPE: DeviationChanged, AlertChanged.TYPE: AlertChanged,
              "deadletter": DeadLetter}
    return {
        f"{name}.v{getattr(model, 'SCHEMA_VERSION', 1)}.json": json.dumps(
            model.model_json_schema(mode="validation"), indent=2, sort_keys=True
        ) + "\n"
        for name, model in sorted(models.items())
    }


def main() -> int:
    JSON_DIR.mkdir(exist_ok=True)
    files = rendered()
    for stale in set(p.name for p in JSON_DIR.glob("*.json")) - set(files):
        (JSON_DIR / stale).unlink()
    for name, text in files.items():
        (JSON_DIR / name).write_text(text)
    print(f"wrote {len(files)} schemas to {JSON_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
