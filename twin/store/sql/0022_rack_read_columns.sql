-- Columns the API's filters read, derived by PostgreSQL itself from what the workers write,
-- so no writer changes and none can drift:
--   onshore_share            from the folded twin's bill of materials (rack_onshore_share, 0020);
--   health_overall           from the health document (ok, warning, critical, unknown);
--   destination_facility_id  where a rack on its way is headed (rollout forecasts).
-- STORED generated columns are recomputed only when an UPDATE sets a column they read: the
-- telemetry path's once-a-second updates never set `twin`, so onshore_share and
-- destination_facility_id cost it nothing. health_overall is recomputed on those updates (one
-- jsonb lookup) and its index changes only when the health word does, so the updates stay HOT.
-- rack_state is a view over its two writers' tables (0004): each column goes to the table of the
-- column it is derived from, and the view shows them at its end.
ALTER TABLE rack_lifecycle
    ADD COLUMN onshore_share double precision GENERATED ALWAYS AS (rack_onshore_share(twin)) STORED,
    ADD COLUMN destination_facility_id text GENERATED ALWAYS AS (twin ->> 'destination_facility_id') STORED;
ALTER TABLE rack_telemetry
    ADD COLUMN health_overall text GENERATED ALWAYS AS (health ->> 'overall') STORED;

-- The column replaces 0020's expression index (same values, no unpacking on a recheck).
DROP INDEX rack_state_onshore_share;
CREATE INDEX rack_state_onshore_share ON rack_lifecycle (onshore_share);
CREATE INDEX rack_state_health ON rack_telemetry (health_overall);

CREATE OR REPLACE VIEW rack_state AS
SELECT l.rack_id, l.generation, l.status, l.version, l.stream_version, l.facility_id, l.hall_id, l.row_id,
       l.position, l.stage_entered_at, l.lifecycle_at, l.lifecycle_recorded_at, l.twin,
       t.telemetry_at, t.power_watts, t.inlet_temperature_celsius, t.outlet_temperature_celsius,
       t.coolant_supply_temperature_celsius, t.coolant_return_temperature_celsius, t.coolant_flow_liters_per_minute,
       t.coolant_differential_pressure_kilopascals, t.leak_detected, t.hottest_accelerator_temperature_celsius,
       t.fan_speed_percent, t.network_links_up, t.network_links_down,
       coalesce(t.health, '{}'::jsonb) AS health, t.intent_revision,
       (SELECT count(*) FROM deviations d WHERE d.rack_id = l.rack_id)::integer AS deviation_count,
       greatest(l.updated_at, t.updated_at) AS updated_at,
       l.onshore_share, t.health_overall, l.destination_facility_id
FROM rack_lifecycle l LEFT JOIN rack_telemetry t USING (rack_id);
