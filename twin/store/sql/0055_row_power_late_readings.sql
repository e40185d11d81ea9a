-- Late readings in the per-row draw (0021). refresh_row_power_minutes rolled each minute once, when
-- it closed: readings of that minute stored afterwards (a collector catching up, a broker backlog
-- drained, a replay) never reached row_power_minutes, so headroom's measured p95 under-read those
-- minutes. The Grafana rollups (0011) have no such gap: the writer records in its batch transaction
-- each minute that got readings (rollup_pending) and the rollup job recomputes that minute from raw.
--
-- The row minutes now do the same, with a queue of their own (the rollup job empties
-- rollup_pending on its own schedule): a statement trigger copies every minute marked in
-- rollup_pending into row_power_pending, in the writer's transaction, so a queued minute is
-- visible exactly when its readings are; the writers are unchanged. Each refresh then also
-- recomputes, whole and from raw, the queued minutes it had already rolled (at most `max_minutes`
-- of them per run, the newest first; the rest wait for the next run), and drops queued minutes
-- older than the longest headroom window (7 days), which no answer reads. The queue grows by a row
-- or two per telemetry batch until a refresh drains it: some API replica (TWIN_API_ROLLUP_SECONDS)
-- or a cron job must run refresh_row_power_minutes, as headroom needs anyway.

CREATE TABLE row_power_pending (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    minute timestamptz NOT NULL
);

CREATE FUNCTION queue_row_power_minutes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO row_power_pending (minute) SELECT DISTINCT minute FROM marked;
    RETURN NULL;
END
$$;

CREATE TRIGGER rollup_pending_queues_row_power AFTER INSERT ON rollup_pending
    REFERENCING NEW TABLE AS marked FOR EACH STATEMENT EXECUTE FUNCTION queue_row_power_minutes();

-- As in 0021, plus the late minutes. Returns the minutes rolled (new and late).
CREATE OR REPLACE FUNCTION refresh_row_power_minutes(max_minutes integer DEFAULT 60) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    upto timestamptz := date_trunc('minute', now());
    from_ts timestamptz;
    horizon timestamptz := date_trunc('minute', now()) - interval '7 days';
    late timestamptz[];
    done bigint[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('row_power_minutes'));
    SELECT rolled_to INTO from_ts FROM row_power_rollup_progress;
    from_ts := greatest(coalesce(from_ts, upto - make_interval(mins => max_minutes)),
                        upto - make_interval(mins => max_minutes));
    -- The queue first, in a statement of its own: every minute read from it has its readings
    -- committed already, so the statements below see them (a later commit queues its minute again).
    SELECT array_agg(m.minute ORDER BY m.minute) INTO late
    FROM (SELECT DISTINCT minute FROM row_power_pending
          WHERE minute < from_ts AND minute >= horizon ORDER BY minute DESC LIMIT max_minutes) m;
    SELECT array_agg(id) INTO done FROM row_power_pending
    WHERE minute < horizon OR minute = ANY(coalesce(late, '{}')) OR (minute >= from_ts AND minute < upto);

    IF late IS NOT NULL THEN  -- recomputed whole: the minute's rows go, its readings come back in full
        DELETE FROM row_power_minutes WHERE minute = ANY(late);
        INSERT INTO row_power_minutes (facility_id, hall_id, row_id, minute, racks, power_watts)
        SELECT s.facility_id, s.hall_id, s.row_id, m.minute, count(*), sum(m.power_watts)
        FROM (SELECT t.rack_id, d.minute, avg(t.power_watts) AS power_watts
              FROM unnest(late) AS d(minute)
              JOIN telemetry t ON t.occurred_at >= d.minute AND t.occurred_at < d.minute + interval '1 minute'
              GROUP BY 1, 2) m
        JOIN rack_lifecycle s USING (rack_id)
        WHERE s.facility_id IS NOT NULL AND s.hall_id IS NOT NULL AND s.row_id IS NOT NULL
        GROUP BY 1, 2, 3, 4;
    END IF;

    IF from_ts < upto THEN  -- the complete minutes not rolled yet, as before
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
    END IF;

    DELETE FROM row_power_pending WHERE id = ANY(coalesce(done, '{}'));
    RETURN greatest((extract(epoch FROM upto - from_ts) / 60)::integer, 0) + coalesce(cardinality(late), 0);
END
$$;
