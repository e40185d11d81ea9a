-- Columns the API's filters read, derived by PostgreSQL itself from what the workers write, so
-- no writer changes and none can drift. On the tables behind the `rack_state` view (0004):
--   rack_lifecycle.onshore_share            from the folded twin's bill of materials (0020);
--   rack_lifecycle.destination_facility_id  where a rack on its way is headed (rollout forecasts);
--   rack_telemetry.health_overall           the health word (ok, warning, critical, unknown).
-- STORED generated columns are recomputed only when an UPDATE sets a column they read. The
-- health word is recomputed on each telemetry update (one jsonb lookup); its index changes only
-- when the word does, so those updates stay HOT.
ALTER TABLE rack_lifecycle
    ADD COLUMN onshore_share double precision GENERATED ALWAYS AS (rack_onshore_share(twin)) STORED,
    ADD COLUMN destination_facility_id text GENERATED ALWAYS AS (twin ->> 'destination_facility_id') STORED;
ALTER TABLE rack_telemetry
    ADD COLUMN health_overall text GENERATED ALWAYS AS (health ->> 'overall') STORED;

CREATE INDEX rack_lifecycle_onshore_share ON rack_lifecycle (onshore_share);
CREATE INDEX rack_telemetry_health ON rack_telemetry (health_overall);
