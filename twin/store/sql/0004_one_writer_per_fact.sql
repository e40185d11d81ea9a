-- One writer per fact: the current state of a rack was one row rewritten by two transactions
-- (the lifecycle path's upsert, the telemetry path's update, and both paths' deviation counts),
-- which deadlocked when a telemetry batch and a lifecycle batch locked two racks in opposite
-- orders. Now each owner has its own table, and no transaction locks a row of the other's:
--
--   rack_lifecycle  written only by the lifecycle path (and `twin rebuild --write`)
--   rack_telemetry  written only by the telemetry path
--   deviations      lifecycle-family rows by the lifecycle path, telemetry-family rows by the
--                   telemetry path (a row's check_name says its family: never both)
--   rack_state      a view joining the two, with `deviation_count` derived from `deviations`
--                   (a count kept apart from the facts it counts drifted from them)
--
-- Readers (views, Grafana, the API, tests) keep reading `rack_state` with its columns as before.

ALTER TABLE rack_state RENAME TO rack_lifecycle;
ALTER INDEX rack_state_pkey RENAME TO rack_lifecycle_pkey;
ALTER INDEX rack_state_facility RENAME TO rack_lifecycle_facility;
ALTER INDEX rack_state_generation RENAME TO rack_lifecycle_generation;
DROP INDEX rack_state_lifecycle_recorded;

CREATE TABLE rack_telemetry (
    rack_id          text PRIMARY KEY,
    telemetry_at     timestamptz NOT NULL,
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
    updated_at       timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);  -- rewritten once a second per rack: keep the updates HOT (see 0003)

INSERT INTO rack_telemetry (rack_id, telemetry_at, power_watts, inlet_temperature_celsius, outlet_temperature_celsius,
                            coolant_supply_temperature_celsius, coolant_return_temperature_celsius,
                            coolant_flow_liters_per_minute, coolant_differential_pressure_kilopascals, leak_detected,
                            hottest_accelerator_temperature_celsius, fan_speed_percent, network_links_up,
                            network_links_down, health, intent_revision, updated_at)
SELECT rack_id, telemetry_at, power_watts, inlet_temperature_celsius, outlet_temperature_celsius,
       coolant_supply_temperature_celsius, coolant_return_temperature_celsius, coolant_flow_liters_per_minute,
       coolant_differential_pressure_kilopascals, leak_detected, hottest_accelerator_temperature_celsius,
       fan_speed_percent, network_links_up, network_links_down, health, intent_revision, updated_at
FROM rack_lifecycle WHERE telemetry_at IS NOT NULL;

ALTER TABLE rack_lifecycle
    DROP COLUMN telemetry_at, DROP COLUMN power_watts, DROP COLUMN inlet_temperature_celsius,
    DROP COLUMN outlet_temperature_celsius, DROP COLUMN coolant_supply_temperature_celsius,
    DROP COLUMN coolant_return_temperature_celsius, DROP COLUMN coolant_flow_liters_per_minute,
    DROP COLUMN coolant_differential_pressure_kilopascals, DROP COLUMN leak_detected,
    DROP COLUMN hottest_accelerator_temperature_celsius, DROP COLUMN fan_speed_percent,
    DROP COLUMN network_links_up, DROP COLUMN network_links_down, DROP COLUMN health, DROP COLUMN intent_revision,
    DROP COLUMN deviation_count;
ALTER TABLE rack_lifecycle SET (fillfactor = 90);

-- How another worker's telemetry side finds lifecycle changes: the id of the transaction that
-- wrote the row. A reader keeps the oldest transaction still running when it last read
-- (`pg_snapshot_xmin`) and next asks for rows written at or after it, so a transaction that
-- commits late is never skipped (a wall-clock window would skip one that ran longer than it).
ALTER TABLE rack_lifecycle ADD COLUMN lifecycle_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX rack_lifecycle_written ON rack_lifecycle (lifecycle_xid);


CREATE VIEW rack_state AS
SELECT l.rack_id, l.generation, l.status, l.version, l.stream_version, l.facility_id, l.hall_id, l.row_id,
       l.position, l.stage_entered_at, l.lifecycle_at, l.lifecycle_recorded_at, l.twin,
       t.telemetry_at, t.power_watts, t.inlet_temperature_celsius, t.outlet_temperature_celsius,
       t.coolant_supply_temperature_celsius, t.coolant_return_temperature_celsius, t.coolant_flow_liters_per_minute,
       t.coolant_differential_pressure_kilopascals, t.leak_detected, t.hottest_accelerator_temperature_celsius,
       t.fan_speed_percent, t.network_links_up, t.network_links_down,
       coalesce(t.health, '{}'::jsonb) AS health, t.intent_revision,
       (SELECT count(*) FROM deviations d WHERE d.rack_id = l.rack_id)::integer AS deviation_count,
       greatest(l.updated_at, t.updated_at) AS updated_at
FROM rack_lifecycle l LEFT JOIN rack_telemetry t USING (rack_id);
