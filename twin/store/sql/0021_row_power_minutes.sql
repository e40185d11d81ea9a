-- Measured draw per row and minute: the headroom endpoint's p95 over a window reads this
-- (a few thousand rows per window), never the raw telemetry (75,000 racks x 60 readings a
-- minute). Filled by refresh_row_power_minutes(), which the API calls in the background
-- (TWIN_API_ROLLUP_SECONDS); each run rolls up the complete minutes newer than the last one
-- rolled. A rack counts towards the row it stands in now (rack_lifecycle), which is where its
-- draw is allocated.
CREATE TABLE row_power_minutes (
    facility_id text NOT NULL,
    hall_id     text NOT NULL,
    row_id      text NOT NULL,
    minute      timestamptz NOT NULL,
    racks       integer NOT NULL,
    power_watts double precision NOT NULL,
    PRIMARY KEY (facility_id, hall_id, row_id, minute)
);
CREATE INDEX row_power_minutes_minute ON row_power_minutes (minute);

CREATE TABLE row_power_rollup_progress (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    rolled_to  timestamptz NOT NULL
);

-- Rolls up complete minutes in (last rolled, now - 1 minute], at most `max_minutes` of them
-- (the first run starts `max_minutes` back). Returns the minutes rolled.
CREATE FUNCTION refresh_row_power_minutes(max_minutes integer DEFAULT 60) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    upto timestamptz := date_trunc('minute', now());
    from_ts timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('row_power_minutes'));
    SELECT rolled_to INTO from_ts FROM row_power_rollup_progress;
    from_ts := greatest(coalesce(from_ts, upto - make_interval(mins => max_minutes)),
                        upto - make_interval(mins => max_minutes));
    IF from_ts >= upto THEN
        RETURN 0;
    END IF;
    INSERT INTO row_power_minutes (facility_id, hall_id, row_id, minute, racks, power_watts)
    SELECT s.facility_id, s.hall_id, s.row_id, m.minute, count(*), sum(m.power_watts)
    FROM (SELECT rack_id, date_trunc('minute', occurred_at) AS minute, avg(power_watts) AS power_watts
          FROM telemetry WHERE occurred_at >= from_ts AND occurred_at < upto GROUP BY 1, 2) m
    JOIN rack_lifecycle s USING (rack_id)
    WHERE s.facility_id IS NOT NULL AND s.hall_id IS NOT NULL AND s.row_id IS NOT NULL
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (facility_id, hall_id, row_id, minute) DO UPDATE SET racks = excluded.racks,
        power_watts = excluded.power_watts;
    INSERT INTO row_power_rollup_progress (only_row, rolled_to) VALUES (true, upto)
    ON CONFLICT (only_row) DO UPDATE SET rolled_to = excluded.rolled_to;
    RETURN (extract(epoch FROM upto - from_ts) / 60)::integer;
END
$$;
