-- Columns the API's filters read, derived by PostgreSQL itself from what the workers write,
-- so no writer changes and none can drift:
--   onshore_share            from the folded twin's bill of materials (rack_onshore_share, 0020);
--   health_overall           from the health document (ok, warning, critical, unknown);
--   destination_facility_id  where a rack on its way is headed (rollout forecasts).
-- STORED generated columns are recomputed only when an UPDATE sets a column they read: the
-- telemetry path's once-a-second updates never set `twin`, so onshore_share and
-- destination_facility_id cost it nothing. health_overall is recomputed on those updates (one
-- jsonb lookup) and its index changes only when the health word does, so the updates stay HOT.
ALTER TABLE rack_state
    ADD COLUMN onshore_share double precision GENERATED ALWAYS AS (rack_onshore_share(twin)) STORED,
    ADD COLUMN health_overall text GENERATED ALWAYS AS (health ->> 'overall') STORED,
    ADD COLUMN destination_facility_id text GENERATED ALWAYS AS (twin ->> 'destination_facility_id') STORED;

-- The column replaces 0020's expression index (same values, no unpacking on a recheck).
DROP INDEX rack_state_onshore_share;
CREATE INDEX rack_state_onshore_share ON rack_state (onshore_share);
CREATE INDEX rack_state_health ON rack_state (health_overall);
