"""`twin collect redfish --targets FILE`: poll Redfish endpoints, publish one report per cycle."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from twin.commands import fail, settings
from twin.errors import TwinError

app = typer.Typer(help="Collect telemetry from real equipment (BMCs, CDUs, rack PDUs over Redfish).",
                  no_args_is_help=True)

_TARGETS_HELP = ("YAML (or JSON) targets file: endpoints with url, kind (bmc, cdu, pdu), racks, and credentials "
                 "by reference (username / username_env, password_env / password_file). See README, "
                 "'Pointing the collector at real BMCs, CDUs and PDUs'.")


@app.command("redfish")
def redfish(
    targets: Annotated[Path, typer.Option("--targets", "-t", help=_TARGETS_HELP)],
    cycles: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many poll cycles (default: run "
                                                  "until Ctrl-C).")] = None,
    interval: Annotated[Optional[float], typer.Option(min=0.01, help="Seconds between cycles (default: the "
                                                      "file's interval_seconds).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print each cycle's report as JSON instead of "
                                          "publishing it (no broker needed).")] = False,
) -> None:
    """Poll BMCs, CDUs and rack PDUs over Redfish; publish each cycle's readings as one telemetry report.

    Racks behind an endpoint that does not answer are reported with it named (the twin marks them stale, endpoint-unreachable); an endpoint answering an HTTP error or non-JSON gets a dead letter on TWIN_TOPIC_DEADLETTER with the reason, and the collector goes on. Publishes to TWIN_KAFKA_BOOTSTRAP (see `twin settings`).
    """
    from twin.collect.poll import Collector, Cycle
    from twin.collect.targets import load_targets
    from twin.messages import Message
    from twin.publisher import Publisher

    try:
        spec = load_targets(targets)
        if interval is not None:
            spec = spec.model_copy(update={"interval_seconds": interval})
        collector = Collector(spec)
    except TwinError as exc:
        fail(exc)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    s = settings()
    try:
        with collector:
            if dry_run:
                def show(cycle: Cycle) -> None:
                    if cycle.report is not None:
                        print(cycle.report.model_dump_json(exclude_none=True), flush=True)
                    for letter in cycle.deadletters:
                        print(letter.model_dump_json(), flush=True)

                collector.run(show, cycles=cycles, stop=stop)
                return
            with Publisher(s.kafka_bootstrap, s.topics, client_id=spec.collector) as publisher:
                key = spec.collector.encode()  # one collector's racks stay on one partition

                def publish(cycle: Cycle) -> None:
                    if cycle.report is not None:
                        publisher.send(Message("telemetry", key, cycle.report.model_dump_json().encode()))
                    for letter in cycle.deadletters:
                        publisher.send(Message("deadletter", (letter.topic or "").encode(),
                                               letter.model_dump_json().encode()))
                    publisher.flush()

                collector.run(publish, cycles=cycles, stop=stop)
    except KeyboardInterrupt:
        pass
    except TwinError as exc:
        fail(exc)
