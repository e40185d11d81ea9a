"""The durable truth: event store, telemetry facts, projections, migrations and read queries.

`postgres.py` is the store the workers write through (one transaction per batch, with the
consumer offsets); `migrations.py` and `sql/` shape the schema; `views.py` answers reads;
`rebuild.py` replays the event store into twins; `verify.py` checks that every view agrees; `deadletters.py` reads and replays refusals;
`rollups.py` keeps telemetry rollups and retention; `storage.py` measures bytes per rack-day.
"""

from twin.store.postgres import (
    READING_COLUMNS,
    Appended,
    AppendedEvent,
    Copied,
    Orphan,
    StateRow,
    StoredEvent,
    StreamEvent,
    TwinStore,
    UnitOfWork,
    forget_tracked_offsets,
)

__all__ = ["Appended", "AppendedEvent", "Copied", "Orphan", "READING_COLUMNS", "StateRow", "StoredEvent", "StreamEvent",
           "TwinStore", "UnitOfWork", "forget_tracked_offsets"]
