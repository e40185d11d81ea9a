"""The capacity-planning HTTP API (FastAPI, OpenAPI 3.1) over `twin.store.queries`.

`create_app` is imported on first use: `twin` registers `twin api` and `twin token` from
`twin.api.commands`, and every CLI call (a worker spawned by the demo too) would otherwise
pay for importing FastAPI and Kafka, about a second on an idle 2-core machine.
"""

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from twin.api.app import create_app

        return create_app
    raise AttributeError(f"module 'twin.api' has no attribute {name!r}")
