"""`python -m streams`: run one worker (the same as `twin worker`)."""

import sys

from twin.errors import TwinError
from twin.settings import get_settings

try:
    get_settings()  # a bad TWIN_* value: one line and a non-zero exit, before the app is built from it
except TwinError as exc:
    print(f"error: the worker cannot start: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

from streams.app import main  # noqa: E402 - after the settings are known to be readable

main()
