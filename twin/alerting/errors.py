"""Errors of the alerting package, a branch of the twin's error tree (`twin/errors.py`):

    TwinError
    └── AlertingError             alerting could not do what was asked
        ├── DeliveryFailed        Alertmanager or PagerDuty did not take a notification (after retries)
        └── SilenceNotFound       no silence with that id

Kept beside the code that raises them, so the shared tree file needs no edit.
"""

from __future__ import annotations

from twin.errors import TwinError

__all__ = ["AlertingError", "DeliveryFailed", "SilenceNotFound"]


class AlertingError(TwinError):
    """Raised when alerting could not do what was asked."""


class DeliveryFailed(AlertingError):
    """Raised when a receiver (Alertmanager, PagerDuty) did not take a request after every retry."""


class SilenceNotFound(AlertingError):
    """Raised when a silence id names no silence."""
