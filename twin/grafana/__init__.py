"""Grafana: the fleet dashboards as code, their provisioning files, and pushing them to a Grafana.

`dashboards.py` builds the five dashboards with grafana-foundation-sdk; `query.py` is the
PostgreSQL data source's query model the SDK lacks; `macros.py` expands Grafana's PostgreSQL
macros the way the data source does (tests run every panel's SQL through it);
`provisioning.py` writes `deploy/grafana/`; `push.py` provisions through the HTTP API.
"""
