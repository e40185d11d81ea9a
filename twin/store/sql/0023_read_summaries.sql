-- Summary tables for the API's fleet-wide answers at 100,000 racks (bench/api.py): a scan of
-- the current state reads every rack's row, folded twin included, and took 400 ms there. They
-- read the tables behind the `rack_state` view (0004) directly. These tables
-- are rebuilt from the current state by refresh_* functions: the API calls them in the
-- background (TWIN_API_SUMMARY_SECONDS), and a query finding one older than its bound
-- refreshes it first. Answers read from them say when (freshness.summarised_at).

CREATE TABLE summary_refreshes (
    name         text PRIMARY KEY,
    refreshed_at timestamptz NOT NULL,
    seconds      double precision NOT NULL,
    newest_reading_at timestamptz  -- the newest reading the current state held (freshness: the raw
                                   -- telemetry's time index is BRIN, which cannot answer max() cheaply)
);

-- The fleet by place, generation, stage and operator (summary by hall or row, a few tens of
-- thousands of rows), the same without hall and row but with the judging intent revision and the
-- quarter the rack entered its stage (summary by the other dimensions, scorecard, rollout,
-- conformance: a thousand rows or so), and per row what the standing racks allocate (headroom).
CREATE TABLE fleet_cube (
    facility_id text, hall_id text, row_id text, generation text, stage text NOT NULL, operator text,
    racks integer NOT NULL,
    in_service integer NOT NULL,
    with_deviations integer NOT NULL,
    critical integer NOT NULL,
    power_watts double precision NOT NULL,           -- latest measured draw, summed
    allocated_draw_watts double precision NOT NULL   -- design draw of the racks standing in a position
);
CREATE TABLE facility_cube (
    facility_id text, generation text, stage text NOT NULL, operator text, intent_revision integer,
    entered_quarter text,
    racks integer NOT NULL,
    in_service integer NOT NULL,
    with_deviations integer NOT NULL,
    critical integer NOT NULL,
    power_watts double precision NOT NULL,
    serving_power_watts double precision NOT NULL,   -- measured draw of the racks in service
    allocated_draw_watts double precision NOT NULL,
    onshore_sum double precision NOT NULL,           -- onshore shares summed, and how many racks have one
    onshore_racks integer NOT NULL
);
CREATE TABLE row_allocation (
    facility_id text NOT NULL, hall_id text NOT NULL, row_id text NOT NULL,
    racks integer NOT NULL, allocated_draw_watts double precision NOT NULL,
    PRIMARY KEY (facility_id, hall_id, row_id)
);

-- Measured p95 draw per place over the default 15-minute window (other windows are computed live).
CREATE TABLE place_draw_p95 (
    level text NOT NULL, facility_id text NOT NULL, hall_id text, row_id text, p95_watts double precision NOT NULL
);

CREATE FUNCTION refresh_fleet_cube(max_age_seconds double precision DEFAULT 0) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('fleet_cube'));
    IF EXISTS (SELECT 1 FROM summary_refreshes WHERE name = 'fleet_cube'
               AND refreshed_at > clock_timestamp() - make_interval(secs => max_age_seconds)) THEN
        RETURN false;  -- another session refreshed it while this one waited
    END IF;
    -- One pass over the current state, narrowed to what the summaries read.
    CREATE TEMP TABLE fleet_scan ON COMMIT DROP AS
    WITH draw AS (
        SELECT DISTINCT ON (generation) generation,
               coalesce((body -> 'power_budget_watts' ->> 'max')::double precision,
                        (body ->> 'cooling_capacity_watts')::double precision) AS draw_watts
        FROM generation_intents ORDER BY generation, revision DESC
    )
    SELECT s.facility_id, s.hall_id, s.row_id, s.generation, s.status AS stage, f.operator, t.intent_revision,
           to_char(s.stage_entered_at AT TIME ZONE 'UTC', 'YYYY"Q"Q') AS entered_quarter,
           s.status IN ('active', 'degraded', 'maintenance') AS serving,
           s.rack_id IN (SELECT rack_id FROM deviations) AS deviating, t.health_overall = 'critical' AS critical,
           t.power_watts, s.onshore_share,
           CASE WHEN s.status IN ('installed', 'commissioned', 'active', 'degraded', 'maintenance')
                     AND s.row_id IS NOT NULL THEN d.draw_watts END AS allocated
    FROM rack_lifecycle s LEFT JOIN rack_telemetry t USING (rack_id) LEFT JOIN facilities f USING (facility_id)
    LEFT JOIN draw d USING (generation);

    DELETE FROM fleet_cube;
    INSERT INTO fleet_cube
    SELECT facility_id, hall_id, row_id, generation, stage, operator, count(*), count(*) FILTER (WHERE serving),
           count(*) FILTER (WHERE deviating), count(*) FILTER (WHERE critical), coalesce(sum(power_watts), 0),
           coalesce(sum(allocated), 0)
    FROM fleet_scan GROUP BY 1, 2, 3, 4, 5, 6;

    DELETE FROM facility_cube;
    INSERT INTO facility_cube
    SELECT facility_id, generation, stage, operator, intent_revision, entered_quarter, count(*),
           count(*) FILTER (WHERE serving), count(*) FILTER (WHERE deviating), count(*) FILTER (WHERE critical),
           coalesce(sum(power_watts), 0), coalesce(sum(power_watts) FILTER (WHERE serving), 0),
           coalesce(sum(allocated), 0), coalesce(sum(onshore_share), 0), count(onshore_share)
    FROM fleet_scan GROUP BY 1, 2, 3, 4, 5, 6;

    DELETE FROM row_allocation;
    INSERT INTO row_allocation
    SELECT facility_id, hall_id, row_id, count(*), sum(allocated)
    FROM fleet_scan WHERE allocated IS NOT NULL AND hall_id IS NOT NULL GROUP BY 1, 2, 3;

    DELETE FROM place_draw_p95;
    INSERT INTO place_draw_p95
    WITH win AS (
        SELECT facility_id, hall_id, row_id, minute, power_watts FROM row_power_minutes
        WHERE minute >= date_trunc('minute', now()) - interval '15 minutes'
    )
    SELECT 'row', facility_id, hall_id, row_id, percentile_cont(0.95) WITHIN GROUP (ORDER BY power_watts)
    FROM win GROUP BY facility_id, hall_id, row_id
    UNION ALL
    SELECT 'hall', facility_id, hall_id, NULL, percentile_cont(0.95) WITHIN GROUP (ORDER BY watts)
    FROM (SELECT facility_id, hall_id, minute, sum(power_watts) AS watts FROM win GROUP BY 1, 2, 3) h
    GROUP BY facility_id, hall_id
    UNION ALL
    SELECT 'facility', facility_id, NULL, NULL, percentile_cont(0.95) WITHIN GROUP (ORDER BY watts)
    FROM (SELECT facility_id, minute, sum(power_watts) AS watts FROM win GROUP BY 1, 2) f
    GROUP BY facility_id;

    INSERT INTO summary_refreshes (name, refreshed_at, seconds, newest_reading_at)
    VALUES ('fleet_cube', started, extract(epoch FROM clock_timestamp() - started),
            (SELECT max(telemetry_at) FROM rack_telemetry))
    ON CONFLICT (name) DO UPDATE SET refreshed_at = excluded.refreshed_at, seconds = excluded.seconds,
                                     newest_reading_at = excluded.newest_reading_at;
    RETURN true;
END
$$;

-- Lead times per stage, from the event store (a stage runs from the event that entered it to
-- the rack's next stage-changing event), per generation and operator; and service starts.
CREATE TABLE stage_durations (
    rack_id text NOT NULL, generation text NOT NULL, operator text, stage text NOT NULL,
    entered_at timestamptz NOT NULL, days double precision
);
CREATE INDEX stage_durations_generation ON stage_durations (generation, stage);

-- Median days from entering a stage to entering service, per operator ('*': the whole fleet).
CREATE TABLE lead_to_service (operator text NOT NULL, stage text NOT NULL, racks integer NOT NULL,
                              median_days double precision NOT NULL);
-- Per operator ('*': all) and generation: time in each stage (median, p90) ...
CREATE TABLE stage_lead_times (operator text NOT NULL, generation text NOT NULL, stage text NOT NULL,
                               racks integer NOT NULL, median_days double precision NOT NULL,
                               p90_days double precision NOT NULL);
-- ... and time in service (closed stays in days, open ones by their start), RMAs and degradations.
CREATE TABLE service_record (operator text NOT NULL, generation text NOT NULL,
                             closed_days double precision NOT NULL, open_stays integer NOT NULL,
                             open_since_epoch_sum double precision NOT NULL, rma integer NOT NULL,
                             failures integer NOT NULL);

CREATE FUNCTION refresh_stage_durations(max_age_seconds double precision DEFAULT 0) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    started timestamptz := clock_timestamp();
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('stage_durations'));
    IF EXISTS (SELECT 1 FROM summary_refreshes WHERE name = 'stage_durations'
               AND refreshed_at > clock_timestamp() - make_interval(secs => max_age_seconds)) THEN
        RETURN false;
    END IF;
    DELETE FROM stage_durations;
    INSERT INTO stage_durations
    WITH steps AS (
        SELECT e.stream_id AS rack_id, e.occurred_at,
               CASE e.type WHEN 'rack.manufactured' THEN 'manufactured'
                           WHEN 'rack.tested' THEN CASE WHEN e.body ->> 'test' = 'factory-acceptance'
                                                         AND (e.body ->> 'passed')::boolean THEN 'factory-tested' END
                           WHEN 'rack.shipped' THEN 'in-transit' WHEN 'rack.received' THEN 'received'
                           WHEN 'rack.installed' THEN 'installed' WHEN 'rack.commissioned' THEN 'commissioned'
                           WHEN 'rack.entered_service' THEN 'active' WHEN 'rack.degraded' THEN 'degraded'
                           WHEN 'rack.maintenance_started' THEN 'maintenance' WHEN 'rack.rma_opened' THEN 'rma'
                           WHEN 'rack.decommissioned' THEN 'decommissioned' END AS stage
        FROM events e WHERE e.type LIKE 'rack.%'
    ), staged AS (
        SELECT rack_id, stage, occurred_at,
               lead(occurred_at) OVER (PARTITION BY rack_id ORDER BY occurred_at) AS left_at
        FROM steps WHERE stage IS NOT NULL
    )
    SELECT st.rack_id, s.generation, f.operator, st.stage, st.occurred_at,
           extract(epoch FROM st.left_at - st.occurred_at) / 86400
    FROM staged st JOIN rack_lifecycle s USING (rack_id) LEFT JOIN facilities f ON f.facility_id = s.facility_id
    WHERE s.generation IS NOT NULL;

    DELETE FROM lead_to_service;
    INSERT INTO lead_to_service
    WITH service AS (
        SELECT rack_id, min(entered_at) AS at FROM stage_durations WHERE stage = 'active' GROUP BY 1
    )
    SELECT CASE WHEN grouping(d.operator) = 1 THEN '*' ELSE coalesce(d.operator, '') END, d.stage, count(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sv.at - d.entered_at) / 86400)
    FROM stage_durations d JOIN service sv USING (rack_id)
    WHERE d.entered_at <= sv.at
      AND d.stage IN ('manufactured', 'factory-tested', 'in-transit', 'received', 'installed', 'commissioned')
    GROUP BY GROUPING SETS ((d.operator, d.stage), (d.stage));

    DELETE FROM stage_lead_times;
    INSERT INTO stage_lead_times
    SELECT CASE WHEN grouping(operator) = 1 THEN '*' ELSE coalesce(operator, '') END, generation, stage, count(*),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY days), percentile_cont(0.9) WITHIN GROUP (ORDER BY days)
    FROM stage_durations
    WHERE days IS NOT NULL AND stage IN ('manufactured', 'factory-tested', 'in-transit', 'received', 'installed',
                                         'commissioned', 'active')
    GROUP BY GROUPING SETS ((operator, generation, stage), (generation, stage));

    DELETE FROM service_record;
    INSERT INTO service_record
    SELECT CASE WHEN grouping(operator) = 1 THEN '*' ELSE coalesce(operator, '') END, generation,
           coalesce(sum(days) FILTER (WHERE stage IN ('active', 'degraded', 'maintenance')), 0),
           count(*) FILTER (WHERE days IS NULL AND stage IN ('active', 'degraded', 'maintenance')),
           coalesce(sum(extract(epoch FROM entered_at))
                    FILTER (WHERE days IS NULL AND stage IN ('active', 'degraded', 'maintenance')), 0),
           count(*) FILTER (WHERE stage = 'rma'), count(*) FILTER (WHERE stage = 'degraded')
    FROM stage_durations GROUP BY GROUPING SETS ((operator, generation), (generation));

    INSERT INTO summary_refreshes (name, refreshed_at, seconds)
    VALUES ('stage_durations', started, extract(epoch FROM clock_timestamp() - started))
    ON CONFLICT (name) DO UPDATE SET refreshed_at = excluded.refreshed_at, seconds = excluded.seconds;
    RETURN true;
END
$$;
