"""The capacity-planning HTTP API (FastAPI, OpenAPI 3.1) over `twin.store.queries`."""

from twin.api.app import create_app

__all__ = ["create_app"]
