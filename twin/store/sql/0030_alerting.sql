-- Alerting: the state of every alert the engine holds, and every transition it made.
-- Why in PostgreSQL: the engine restarts (or another engine takes over) and must carry on where
-- the last one stopped: no second page for an alert already paged, no lost resolve.

-- One row per alert (dedup key = rule + rack, or rule + place/generation). Resolved and
-- cancelled rows stay for the generation rule's window, then the engine prunes them.
CREATE TABLE alert_state (
    alert_key     text PRIMARY KEY,
    rule          text NOT NULL,
    rack_id       text,
    phase         text NOT NULL CHECK (phase IN ('pending', 'firing', 'suppressed', 'resolved', 'cancelled')),
    labels        jsonb NOT NULL,
    annotations   jsonb NOT NULL,
    value         double precision,
    band_min      double precision,
    band_max      double precision,
    active_since  timestamptz,
    fired_at      timestamptz,
    resolved_at   timestamptz,
    last_true_at  timestamptz,
    sent_at       timestamptz,  -- last time Alertmanager was told about it (firing alerts are re-sent)
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_state_rack ON alert_state (rack_id) WHERE rack_id IS NOT NULL;

-- Every transition, append-only; doubles as the outbox of the senders: a row is delivered to
-- Alertmanager, PagerDuty and fleet.alerts.v1 after it is committed, and marked when each took it.
CREATE TABLE alert_history (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    alert_key       text NOT NULL,
    rule            text NOT NULL,
    rack_id         text,
    phase           text NOT NULL,
    previous        text,
    at              timestamptz NOT NULL,
    labels          jsonb NOT NULL,
    annotations     jsonb NOT NULL,
    value           double precision,
    body            jsonb NOT NULL,        -- the AlertChanged event as published
    alertmanager_at timestamptz,
    pagerduty_at    timestamptz,
    published_at    timestamptz,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_history_rack ON alert_history (rack_id, at DESC) WHERE rack_id IS NOT NULL;
CREATE INDEX alert_history_key ON alert_history (alert_key, at DESC);
CREATE INDEX alert_history_undelivered ON alert_history (id)
    WHERE alertmanager_at IS NULL OR pagerduty_at IS NULL OR published_at IS NULL;
