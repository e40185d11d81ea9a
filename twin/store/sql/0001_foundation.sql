-- Foundation: fleet registry, event store, telemetry facts, current state, dead letters,
-- consumer tracking. Every statement is safe to run once per database; twin.migrations records
-- which files ran, under an advisory lock so concurrent workers do not race.

-- Fleet registry: facilities (own or partner), halls, rows with their site limits.
CREATE TABLE facilities (
    facility_id   text PRIMARY KEY,
    name          text NOT NULL,
    ownership     text NOT NULL CHECK (ownership IN ('own', 'partner')),
    operator      text NOT NULL,
    region        text NOT NULL,
    registered_at timestamptz NOT NULL
);

CREATE TABLE halls (
    facility_id            text NOT NULL REFERENCES facilities ON DELETE CASCADE,
    hall_id                text NOT NULL,
    power_capacity_watts   double precision NOT NULL,
    cooling_capacity_watts double precision NOT NULL,
    PRIMARY KEY (facility_id, hall_id)
);

CREATE TABLE rows (
    facility_id            text NOT NULL,
    hall_id                text NOT NULL,
    row_id                 text NOT NULL,
    positions              integer NOT NULL,
    power_capacity_watts   double precision NOT NULL,
    cooling_capacity_watts double precision NOT NULL,
    PRIMARY KEY (facility_id, hall_id, row_id),
    FOREIGN KEY (facility_id, hall_id) REFERENCES halls ON DELETE CASCADE
);

-- A rack is known to the fleet from its rack.manufactured event on; its generation never changes.
CREATE TABLE racks (
    rack_id         text PRIMARY KEY,
    generation      text NOT NULL,
    serial_number   text NOT NULL,
    manufactured_at timestamptz NOT NULL
);

-- Design intent per generation, every revision kept (a deviation names the revision that judged it).
CREATE TABLE generation_intents (
    generation   text NOT NULL,
    revision     integer NOT NULL,
    published_at timestamptz NOT NULL,
    body         jsonb NOT NULL,
    PRIMARY KEY (generation, revision)
);

CREATE TABLE rollout_targets (
    revision         integer NOT NULL,
    facility_id      text NOT NULL,
    generation       text NOT NULL,
    quarter          text NOT NULL,
    racks_in_service integer NOT NULL,
    PRIMARY KEY (revision, facility_id, generation, quarter)
);

-- The event store: append-only; event_id is the idempotency key; stream_version numbers a
-- stream's events in arrival order (a rack's stream is its rack_id; intent streams are
-- 'intent:<generation>', 'facility:<id>', 'rollout').
CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    stream_id      text NOT NULL,
    stream_version integer NOT NULL,
    type           text NOT NULL,
    schema_version integer NOT NULL,
    occurred_at    timestamptz NOT NULL,
    source         text NOT NULL,
    seq            bigint NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    body           jsonb NOT NULL,
    UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_stream_occurred ON events (stream_id, occurred_at);

-- Append-only, loudly: a trigger (not a rule: rules forbid INSERT ... ON CONFLICT).
CREATE FUNCTION refuse_event_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event store is append-only: % on events is refused', TG_OP;
END
$$;
CREATE TRIGGER events_are_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_event_rewrite();

-- Snapshots of a rack's folded lifecycle state at a stream position, so rebuild and time
-- travel need not fold from the first event.
CREATE TABLE rack_snapshots (
    rack_id        text NOT NULL,
    stream_version integer NOT NULL,
    occurred_at    timestamptz NOT NULL,
    body           jsonb NOT NULL,
    PRIMARY KEY (rack_id, stream_version)
);

-- Current state, one row per rack: read by Grafana, the API and the CLI. Lifecycle columns are
-- written by the lifecycle path (guarded by version), telemetry columns by the telemetry path
-- (guarded by telemetry_at: a late reading never overwrites a newer one).
CREATE TABLE rack_state (
    rack_id          text PRIMARY KEY,
    generation       text,
    status           text NOT NULL DEFAULT 'planned',
    version          integer NOT NULL DEFAULT 0,
    stream_version   integer NOT NULL DEFAULT 0,
    facility_id      text,
    hall_id          text,
    row_id           text,
    position         integer,
    stage_entered_at timestamptz,
    lifecycle_at     timestamptz,
    lifecycle_recorded_at timestamptz,
    twin             jsonb NOT NULL DEFAULT '{}'::jsonb,
    telemetry_at     timestamptz,
    power_watts      double precision,
    inlet_temperature_celsius double precision,
    outlet_temperature_celsius double precision,
    coolant_supply_temperature_celsius double precision,
    coolant_return_temperature_celsius double precision,
    coolant_flow_liters_per_minute double precision,
    coolant_differential_pressure_kilopascals double precision,
    leak_detected    boolean,
    hottest_accelerator_temperature_celsius double precision,
    fan_speed_percent double precision,
    network_links_up integer,
    network_links_down integer,
    health           jsonb NOT NULL DEFAULT '{}'::jsonb,
    intent_revision  integer,
    deviation_count  integer NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rack_state_facility ON rack_state (facility_id, generation, status);
CREATE INDEX rack_state_generation ON rack_state (generation, status);
CREATE INDEX rack_state_lifecycle_recorded ON rack_state (lifecycle_recorded_at);

-- Open deviations from design intent, one row per rack and check.
CREATE TABLE deviations (
    rack_id         text NOT NULL,
    check_name      text NOT NULL,
    severity        text NOT NULL,
    measured        text,
    allowed_min     double precision,
    allowed_max     double precision,
    unit            text,
    generation      text NOT NULL,
    intent_revision integer NOT NULL,
    detail          text NOT NULL DEFAULT '',
    since           timestamptz NOT NULL,
    PRIMARY KEY (rack_id, check_name)
);

-- Bad input with its precise reason. (topic, partition, offset, idx) makes re-processing the
-- same message a no-op; idx is the reading's index in a telemetry report, -1 for a whole message.
CREATE TABLE deadletters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reason      text NOT NULL,
    detail      text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    idx         integer NOT NULL DEFAULT -1,
    event_id    text,
    rack_id     text,
    source      text,
    payload     text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    UNIQUE (topic, partition, "offset", idx)
);
CREATE INDEX deadletters_reason ON deadletters (reason, recorded_at);
-- Input about a rack not known yet (telemetry or lifecycle overtaking the rack's manufacture):
-- adopted by the workers once the rack is known, so early facts are late, never lost.
CREATE INDEX deadletters_orphans ON deadletters (rack_id) WHERE reason = 'unknown-rack' AND replayed_at IS NULL;

-- eventsourcing's Tracking: the last offset whose effects are committed, written in the same
-- transaction as those effects, so a re-delivered message is recognised and skipped.
CREATE TABLE consumer_offsets (
    group_id   text NOT NULL,
    topic      text NOT NULL,
    partition  integer NOT NULL,
    "offset"   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
