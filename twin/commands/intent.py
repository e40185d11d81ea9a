"""`twin intent`: design intent per generation; publish revisions from a file."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from twin.commands import console, fail, settings
from twin.errors import TwinError

app = typer.Typer(help="Design intent per generation: its revisions, and publishing new ones.", no_args_is_help=True)


@app.command("publish")
def intent_publish(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="A catalog JSON: {\"intents\": [GenerationIntent, ...]} or a list.")],
    source: Annotated[str, typer.Option(help="Envelope source of the published events.")] = "design-intent",
) -> None:
    """Publish design-intent revisions from a file; workers re-judge every twin of a generation that gets a new revision."""
    from pydantic import ValidationError

    from schemas import IntentPublished
    from twin.domain.intent import IntentCatalog
    from twin.embedded.simulator import Message
    from twin.publisher import Publisher

    try:
        catalog = IntentCatalog.from_json(file.read_bytes())
    except (ValidationError, ValueError) as exc:
        fail(f"{file} is not a valid intent catalog: {exc}")
    s = settings()
    now = datetime.now(timezone.utc)
    try:
        with Publisher(s.kafka_bootstrap, s.topics) as publisher:
            for seq, intent in enumerate(catalog, start=1):
                event = IntentPublished(
                    event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"intent/{intent.generation}/{intent.revision}"),
                    occurred_at=now, source=source, seq=int(now.timestamp() * 1000) + seq, intent=intent)
                publisher.send(Message("intent", intent.generation.encode(), event.model_dump_json().encode()))
                console.print(f"published {intent.generation} revision {intent.revision}")
            publisher.flush()
    except TwinError as exc:
        fail(exc)
