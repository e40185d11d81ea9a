"""Alerting to on-call: rules (pure, `rules.py`), the engine that runs them against the twin
database (`engine.py`), its history store (`store.py`), and the senders (`alertmanager.py`,
`pagerduty.py`)."""
