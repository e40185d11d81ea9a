"""`python -m twin.alerting`: the alert engine, as `twin alerts run`, without loading every CLI verb
(the demo and the benchmark start it as a child; a loaded machine feels the difference)."""

import typer

from twin.alerting.cli import run

if __name__ == "__main__":
    typer.run(run)
