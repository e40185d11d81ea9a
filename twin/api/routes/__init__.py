"""One router per resource; `ROUTERS` is what the app mounts under /v1."""

from twin.api.routes import events, fleet, intents, plan, racks, tokens, topology

ROUTERS = (fleet.router, racks.router, plan.router, intents.router, topology.router, events.router,
           tokens.router)

__all__ = ["ROUTERS"]
