"""The design-intent catalog: every revision of every generation's intent, side by side.

Why a catalog and not one intent per generation: several generations roll out in parallel and
each is revised while racks of it are in the field. A deviation names the revision that judged
it, time travel must judge a past entry into service by the intent in force then, and a new
revision must re-judge every twin of its generation. So the catalog keeps all revisions, says
which is the latest, which was in force at an instant, and whether a publication is news.

Publishing is idempotent: a revision the catalog already holds is ignored, so replaying the
intent topic changes nothing; the first publication of a revision number wins (a revision is
immutable). `publish` answers True only when the revision becomes its generation's latest:
that is when the caller re-judges every twin of the generation.

No I/O here: the caller reads files and hands over text, bytes or parsed JSON. The one
exception is `IntentCatalog.default()`, which reads the catalog shipped inside this package
(`twin/domain/catalog/generations.json`), a fixed resource that the CLI and the demo start from.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import orjson

from schemas import GenerationIntent

__all__ = ["DEFAULT_CATALOG_RESOURCE", "IntentCatalog", "intent_for"]

DEFAULT_CATALOG_RESOURCE = "catalog/generations.json"
"""The default catalog, relative to the `twin.domain` package."""


class _Revision:
    """One published revision and the instant it took effect (None: since the beginning)."""

    __slots__ = ("intent", "published_at")

    def __init__(self, intent: GenerationIntent, published_at: datetime | None) -> None:
        self.intent = intent
        self.published_at = published_at


class IntentCatalog:
    """Every known revision of every generation's design intent."""

    def __init__(self, intents: Iterable[GenerationIntent] = ()) -> None:
        self._by_generation: dict[str, list[_Revision]] = {}  # sorted by revision
        for intent in intents:
            self.publish(intent)

    # --- publishing ------------------------------------------------------------------------

    def publish(self, intent: GenerationIntent, published_at: datetime | None = None) -> bool:
        """Add a revision; True when it becomes the generation's latest (then re-judge its twins).

        A revision already held is ignored (the first publication wins). An older revision
        arriving late is kept for `at` and `as_of` but returns False: current judgements stand.

        `published_at` (the `intent.published` event's `occurred_at`) lets `as_of` pick the
        revision in force at an instant; without it the revision counts as in force from the
        beginning of time, which is right for a seeded catalog and wrong for a later revision.
        """
        revisions = self._by_generation.setdefault(intent.generation, [])
        numbers = [r.intent.revision for r in revisions]
        at = bisect.bisect_left(numbers, intent.revision)
        if at < len(numbers) and numbers[at] == intent.revision:
            return False
        revisions.insert(at, _Revision(intent, published_at))
        return at == len(revisions) - 1

    def copy(self) -> IntentCatalog:
        """Another catalog with the same revisions: publish into the copy inside a transaction, and
        let others see it only once that transaction commits."""
        out = IntentCatalog()
        out._by_generation = {g: list(revisions) for g, revisions in self._by_generation.items()}
        return out

    # --- reading ---------------------------------------------------------------------------

    def latest(self, generation: str) -> GenerationIntent | None:
        """The highest revision of `generation`, or None when the generation is unknown."""
        revisions = self._by_generation.get(generation)
        return revisions[-1].intent if revisions else None

    def at(self, generation: str, revision: int) -> GenerationIntent | None:
        """Revision `revision` of `generation`, or None."""
        for r in self._by_generation.get(generation, ()):
            if r.intent.revision == revision:
                return r.intent
        return None

    def as_of(self, generation: str, instant: datetime) -> GenerationIntent | None:
        """The revision in force at `instant`: the highest published at or before it.

        When none was published yet at `instant`, the earliest revision answers (a rack
        judged before its generation's intent was recorded is judged by the first one).
        """
        revisions = self._by_generation.get(generation)
        if not revisions:
            return None
        in_force = [r for r in revisions if r.published_at is None or r.published_at <= instant]
        return (in_force[-1] if in_force else revisions[0]).intent

    def published_at(self, generation: str, revision: int) -> datetime | None:
        """When a revision took effect, if the publisher said."""
        for r in self._by_generation.get(generation, ()):
            if r.intent.revision == revision:
                return r.published_at
        return None

    def generations(self) -> list[str]:
        """Known generation slugs, sorted."""
        return sorted(self._by_generation)

    def revisions(self, generation: str) -> list[int]:
        """Known revision numbers of `generation`, ascending."""
        return [r.intent.revision for r in self._by_generation.get(generation, ())]

    def __contains__(self, generation: object) -> bool:
        return generation in self._by_generation

    def __iter__(self) -> Iterator[GenerationIntent]:
        """The latest intent of each generation, by generation slug."""
        for generation in self.generations():
            yield self._by_generation[generation][-1].intent

    def __len__(self) -> int:
        return len(self._by_generation)

    def __repr__(self) -> str:
        return f"IntentCatalog({', '.join(f'{g}@{self.revisions(g)[-1]}' for g in self.generations())})"

    # --- JSON ------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any] | list[Any]) -> IntentCatalog:
        """A catalog from JSON: `{"intents": [GenerationIntent, ...]}` or a bare list of intents.

        Raises pydantic's `ValidationError` (a `ValueError`) naming the field that is wrong.
        """
        parsed = orjson.loads(data) if isinstance(data, (str, bytes)) else data
        items = parsed.get("intents", ()) if isinstance(parsed, Mapping) else parsed
        if not isinstance(items, list):
            raise ValueError("a design-intent catalog is a JSON list of intents or an object with an `intents` list")
        return cls(GenerationIntent.model_validate(item) for item in items)

    def to_json(self) -> dict[str, Any]:
        """Every revision, as `from_json` reads it."""
        return {"intents": [r.intent.model_dump(mode="json") for g in self.generations()
                            for r in self._by_generation[g]]}

    @classmethod
    def default(cls) -> IntentCatalog:
        """The catalog shipped with the twin (`twin/domain/catalog/generations.json`)."""
        from pathlib import Path  # package data beside this module (importlib.resources trips on editable installs)

        return cls.from_json((Path(__file__).parent / DEFAULT_CATALOG_RESOURCE).read_bytes())


def intent_for(intents: IntentCatalog | Mapping[str, GenerationIntent], generation: str | None,
               instant: datetime) -> GenerationIntent | None:
    """The intent that judges a rack of `generation` at `instant`, from a catalog or a plain mapping."""
    if generation is None:
        return None
    if isinstance(intents, IntentCatalog):
        return intents.as_of(generation, instant)
    return intents.get(generation)
