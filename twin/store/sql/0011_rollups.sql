-- Rollups: per-rack 1-minute and 1-hour aggregates (min, max, mean, last of every field), a
-- per-facility/hall/generation 1-minute aggregate for fleet panels, and one query surface over
-- them that reads the same on both storage paths (issue 10).
--
-- Without TimescaleDB (the embedded default, what the tests exercise):
--   * the worker, in its batch transaction, records which minutes got readings
--     (`rollup_pending`, a few rows per batch: twin.store.rollups.mark_pending);
--   * a job (`twin rollup`) recomputes those minutes from the raw rows, then the hours and the
--     facility minutes and hours they touch, and advances `rollup_watermark`. Recomputing from raw makes
--     late and repeated readings harmless: the raw table holds each reading once;
--   * the per-rack surface reads stored rollups below the watermark and aggregates raw rows above
--     it, so one rack's series is never behind its raw data (TimescaleDB's real-time aggregates);
--     the fleet surface (facility_series) reads stored rollups only (see there why).
-- With TimescaleDB (UNTESTED HERE, it cannot be installed on the development machines): the
-- per-rack rollups are continuous aggregates of the same names and columns, real-time
-- (materialized_only = false), with refresh policies; see the block at the end.
--
-- Aggregation rules, one definition each (generated below from one field list):
--   from raw:     min, max, avg, last (the reading with the latest occurred_at; ties go to the
--                 greatest source); booleans: bool_and, bool_or, share of true readings, last.
--   1 h from 1 m: min of mins, max of maxes, mean weighted by readings, last minute's last.
-- Buckets are UTC: date_bin from 2000-01-01T00:00Z does not depend on the session's time zone.

CREATE TABLE rollup_pending (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    minute timestamptz NOT NULL
);

CREATE TABLE rollup_watermark (
    only_row           boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    materialized_until timestamptz NOT NULL
);
INSERT INTO rollup_watermark (materialized_until) VALUES ('-infinity');
-- Readings stored before this migration are rolled up by the job's first run.
INSERT INTO rollup_pending (minute)
SELECT DISTINCT date_bin('1 minute', occurred_at, timestamptz '2000-01-01 00:00:00+00') FROM telemetry;

-- The watermark: rollups are complete below it (up to readings still pending), raw above it.
CREATE FUNCTION rollup_materialized_until() RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT materialized_until FROM rollup_watermark
$$;

-- Which resolution a range is read at: raw up to 6 hours, 1 minute up to 8 days, then 1 hour
-- (a 1,000-pixel panel shows about one point per bucket at each step).
CREATE FUNCTION telemetry_resolution(t_from timestamptz, t_to timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN t_to - t_from <= interval '6 hours' THEN 'raw'
                WHEN t_to - t_from <= interval '8 days' THEN '1m'
                ELSE '1h' END
$$;

CREATE TABLE facility_minutes (
    bucket                                      timestamptz NOT NULL,
    power_watts_sum                             double precision NOT NULL,
    coolant_flow_liters_per_minute_sum          double precision NOT NULL,
    power_watts_max                             real NOT NULL,
    inlet_temperature_celsius_max               real NOT NULL,
    outlet_temperature_celsius_max              real NOT NULL,
    coolant_return_temperature_celsius_max      real NOT NULL,
    hottest_accelerator_temperature_celsius_max real NOT NULL,
    racks                                       integer NOT NULL,
    leaking_racks                               integer NOT NULL,
    facility_id                                 text NOT NULL,
    hall_id                                     text NOT NULL,
    generation                                  text NOT NULL,
    PRIMARY KEY (bucket, facility_id, hall_id, generation)
) PARTITION BY RANGE (bucket);

DO $generate$
DECLARE
    has_timescale boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    columns_ddl text;
    from_raw text;
    from_minutes text;
    as_raw text;
    cagg_minutes text;
    cagg_hours text;
BEGIN
    -- One field list; every column list and aggregate below is derived from it, in table order
    -- (8-byte bucket, 4-byte reals, 4-byte readings, 2-byte smallints, booleans, then rack_id).
    CREATE TEMP TABLE rollup_columns ON COMMIT DROP AS
    WITH fields(field, kind, fo) AS (VALUES
        ('power_watts', 'real', 1), ('inlet_temperature_celsius', 'real', 2),
        ('outlet_temperature_celsius', 'real', 3), ('coolant_supply_temperature_celsius', 'real', 4),
        ('coolant_return_temperature_celsius', 'real', 5), ('coolant_flow_liters_per_minute', 'real', 6),
        ('coolant_differential_pressure_kilopascals', 'real', 7),
        ('hottest_accelerator_temperature_celsius', 'real', 8), ('fan_speed_percent', 'real', 9),
        ('network_links_up', 'smallint', 10), ('network_links_down', 'smallint', 11),
        ('leak_detected', 'boolean', 12)
    ), stats(stat, so) AS (VALUES ('min', 1), ('max', 2), ('mean', 3), ('last', 4))
    SELECT f.field || '_' || s.stat AS col, f.field, f.kind, s.stat,
           CASE WHEN s.stat = 'mean' THEN 'real' ELSE f.kind END AS type,
           -- table order: reals, then the means of smallints/booleans, then smallints, then booleans
           CASE WHEN f.kind = 'real' OR s.stat = 'mean' THEN 1 WHEN f.kind = 'smallint' THEN 3 ELSE 4 END AS grp,
           f.fo, s.so
    FROM fields f CROSS JOIN stats s;
    INSERT INTO rollup_columns VALUES ('readings', NULL, 'integer', NULL, 'integer', 2, 0, 0);

    SELECT string_agg(format('%I %s NOT NULL', col, type), ', ' ORDER BY grp, fo, so) INTO columns_ddl
    FROM rollup_columns;

    SELECT string_agg(CASE
        WHEN col = 'readings' THEN 'count(*)::integer'
        WHEN stat = 'min' AND kind = 'boolean' THEN format('bool_and(%I)', field)
        WHEN stat = 'max' AND kind = 'boolean' THEN format('bool_or(%I)', field)
        WHEN stat = 'last' AND kind = 'boolean' THEN format('bool_or(%I) FILTER (WHERE rn = 1)', field)
        WHEN stat = 'mean' AND kind = 'boolean' THEN format('avg(%I::integer)::real', field)
        WHEN stat = 'mean' THEN format('avg(%I)::real', field)
        WHEN stat = 'last' THEN format('min(%I) FILTER (WHERE rn = 1)', field)
        ELSE format('%s(%I)', stat, field) END, ', ' ORDER BY grp, fo, so) INTO from_raw
    FROM rollup_columns;

    SELECT string_agg(CASE
        WHEN col = 'readings' THEN 'sum(readings)::integer'
        WHEN stat = 'min' AND kind = 'boolean' THEN format('bool_and(%I)', col)
        WHEN stat = 'max' AND kind = 'boolean' THEN format('bool_or(%I)', col)
        WHEN stat = 'last' AND kind = 'boolean' THEN format('bool_or(%I) FILTER (WHERE rn = 1)', col)
        WHEN stat = 'mean' THEN format('(sum(%I::double precision * readings) / sum(readings))::real', col)
        WHEN stat = 'last' THEN format('min(%I) FILTER (WHERE rn = 1)', col)
        ELSE format('%s(%I)', stat, col) END, ', ' ORDER BY grp, fo, so) INTO from_minutes
    FROM rollup_columns;

    -- A raw reading seen as a bucket of one (the raw resolution of telemetry_series).
    SELECT string_agg(CASE
        WHEN col = 'readings' THEN '1'
        WHEN stat = 'mean' AND kind = 'boolean' THEN format('%I::integer::real', field)
        WHEN stat = 'mean' THEN format('%I::real', field)
        ELSE format('%I', field) END, ', ' ORDER BY grp, fo, so) INTO as_raw
    FROM rollup_columns;

    -- TimescaleDB: the same names, columns and aggregation rules as continuous aggregates,
    -- real-time (materialized_only = false: since 2.13 the default is materialized only); hours
    -- are a hierarchical aggregate of the minutes. UNTESTED HERE: without the extension the two
    -- statements are compiled (syntax-checked), never run, in a block that cannot reach them.
    cagg_minutes := format('CREATE MATERIALIZED VIEW rack_minutes WITH (timescaledb.continuous,'
                   ' timescaledb.materialized_only = false) AS SELECT time_bucket(interval ''1 minute'', occurred_at)'
                   ' AS bucket, %s, rack_id FROM telemetry GROUP BY rack_id, 1 WITH NO DATA',
                   (SELECT string_agg(CASE
                        WHEN col = 'readings' THEN 'count(*)::integer'
                        WHEN stat = 'min' AND kind = 'boolean' THEN format('bool_and(%I)', field)
                        WHEN stat = 'max' AND kind = 'boolean' THEN format('bool_or(%I)', field)
                        WHEN stat = 'mean' AND kind = 'boolean' THEN format('avg(%I::integer)::real', field)
                        WHEN stat = 'mean' THEN format('avg(%I)::real', field)
                        WHEN stat = 'last' THEN format('last(%I, occurred_at)', field)
                        ELSE format('%s(%I)', stat, field) END || format(' AS %I', col),
                        ', ' ORDER BY grp, fo, so) FROM rollup_columns));
    cagg_hours := format('CREATE MATERIALIZED VIEW rack_hours WITH (timescaledb.continuous,'
                   ' timescaledb.materialized_only = false) AS SELECT time_bucket(interval ''1 hour'', bucket)'
                   ' AS bucket, %s, rack_id FROM rack_minutes GROUP BY rack_id, 1 WITH NO DATA',
                   (SELECT string_agg(CASE
                        WHEN col = 'readings' THEN 'sum(readings)::integer'
                        WHEN stat = 'min' AND kind = 'boolean' THEN format('bool_and(%I)', col)
                        WHEN stat = 'max' AND kind = 'boolean' THEN format('bool_or(%I)', col)
                        WHEN stat = 'mean' THEN
                            format('(sum(%I::double precision * readings) / sum(readings))::real', col)
                        WHEN stat = 'last' THEN format('last(%I, bucket)', col)
                        ELSE format('%s(%I)', stat, col) END || format(' AS %I', col),
                        ', ' ORDER BY grp, fo, so) FROM rollup_columns));
    IF NOT has_timescale THEN
        EXECUTE format('DO $check$ BEGIN IF false THEN %s; %s; END IF; END $check$', cagg_minutes, cagg_hours);
    END IF;

    IF has_timescale THEN
        -- They are real-time already, so the live functions are plain reads of them.
        EXECUTE cagg_minutes;
        EXECUTE cagg_hours;
        CREATE FUNCTION rack_minutes_from_raw(t_from timestamptz, t_to timestamptz, racks text[] DEFAULT NULL)
        RETURNS SETOF rack_minutes LANGUAGE sql STABLE AS $body$
            SELECT * FROM rack_minutes
            WHERE bucket >= t_from AND bucket < t_to AND (racks IS NULL OR rack_id = ANY(racks))
        $body$;
        CREATE FUNCTION rack_minutes_live(t_from timestamptz, t_to timestamptz, racks text[] DEFAULT NULL)
        RETURNS SETOF rack_minutes LANGUAGE sql STABLE AS $body$
            SELECT * FROM rack_minutes_from_raw(t_from, t_to, racks)
        $body$;
        CREATE FUNCTION rack_hours_live(t_from timestamptz, t_to timestamptz, racks text[] DEFAULT NULL)
        RETURNS SETOF rack_hours LANGUAGE sql STABLE AS $body$
            SELECT * FROM rack_hours
            WHERE bucket >= t_from AND bucket < t_to AND (racks IS NULL OR rack_id = ANY(racks))
        $body$;
    ELSE
    EXECUTE format('CREATE TABLE rack_minutes (bucket timestamptz NOT NULL, %s, rack_id text NOT NULL,'
                   ' PRIMARY KEY (rack_id, bucket)) PARTITION BY RANGE (bucket)', columns_ddl);
    EXECUTE format('CREATE TABLE rack_hours (bucket timestamptz NOT NULL, %s, rack_id text NOT NULL,'
                   ' PRIMARY KEY (rack_id, bucket)) PARTITION BY RANGE (bucket)', columns_ddl);
    CREATE INDEX rack_minutes_bucket ON rack_minutes USING brin (bucket);
    CREATE INDEX rack_hours_bucket ON rack_hours USING brin (bucket);

    -- The one definition of a rack's minute from raw readings (racks NULL: every rack).
    EXECUTE format($f$
        CREATE FUNCTION rack_minutes_from_raw(t_from timestamptz, t_to timestamptz, racks text[] DEFAULT NULL)
        RETURNS SETOF rack_minutes LANGUAGE sql STABLE AS $body$
            SELECT bucket, %s, rack_id
            FROM (SELECT t.*, date_bin('1 minute', occurred_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
                         row_number() OVER (PARTITION BY rack_id,
                                            date_bin('1 minute', occurred_at, timestamptz '2000-01-01 00:00:00+00')
                                            ORDER BY occurred_at DESC, source DESC) AS rn
                  FROM telemetry t
                  WHERE occurred_at >= t_from AND occurred_at < t_to AND (racks IS NULL OR rack_id = ANY(racks))) r
            GROUP BY rack_id, bucket
        $body$ $f$, from_raw);

    -- Minutes as a dashboard should see them: stored below the watermark, from raw above it; every
-- bucket that overlaps [t_from, t_to).
    CREATE FUNCTION rack_minutes_live(t_from timestamptz, t_to timestamptz, racks text[] DEFAULT NULL)
    RETURNS SETOF rack_minutes LANGUAGE sql STABLE AS $body$
        SELECT * FROM rack_minutes
        WHERE bucket >= date_bin('1 minute', t_from, timestamptz '2000-01-01 00:00:00+00')
          AND bucket < least(t_to, rollup_materialized_until())
          AND (racks IS NULL OR rack_id = ANY(racks))
        UNION ALL
        SELECT * FROM rack_minutes_from_raw(
            greatest(date_bin('1 minute', t_from, timestamptz '2000-01-01 00:00:00+00'), rollup_materialized_until()),
            t_to, racks)
    $body$;

    -- The one definition of a rack's hour from its minutes.
    EXECUTE format($f$
        CREATE FUNCTION rack_hours_from_minutes(t_from timestamptz, t_to timestamptz, racks text[] DEFAULT NULL)
        RETURNS SETOF rack_hours LANGUAGE sql STABLE AS $body$
            SELECT bucket, %s, rack_id
            FROM (SELECT m.rack_id, date_bin('1 hour', m.bucket, timestamptz '2000-01-01 00:00:00+00') AS bucket,
                         %s,
                         row_number() OVER (PARTITION BY m.rack_id,
                                            date_bin('1 hour', m.bucket, timestamptz '2000-01-01 00:00:00+00')
                                            ORDER BY m.bucket DESC) AS rn
                  FROM rack_minutes_live(t_from, t_to, racks) m) r
            GROUP BY rack_id, bucket
        $body$ $f$, from_minutes,
        (SELECT string_agg(format('m.%I', col), ', ' ORDER BY grp, fo, so) FROM rollup_columns));

    CREATE FUNCTION rack_hours_live(t_from timestamptz, t_to timestamptz, racks text[] DEFAULT NULL)
    RETURNS SETOF rack_hours LANGUAGE sql STABLE AS $body$
        SELECT * FROM rack_hours
        WHERE bucket >= date_bin('1 hour', t_from, timestamptz '2000-01-01 00:00:00+00')
          AND bucket < least(t_to, date_bin('1 hour', rollup_materialized_until(), timestamptz '2000-01-01 00:00:00+00'))
          AND (racks IS NULL OR rack_id = ANY(racks))
        UNION ALL
        SELECT * FROM rack_hours_from_minutes(
            greatest(date_bin('1 hour', t_from, timestamptz '2000-01-01 00:00:00+00'),
                     date_bin('1 hour', rollup_materialized_until(), timestamptz '2000-01-01 00:00:00+00')),
            t_to, racks)
    $body$;

    END IF;

    -- The query surface for one rack: raw, 1-minute or 1-hour rows by the range (or as asked),
    -- every row shaped like a rollup (a raw reading is a bucket of one).
    EXECUTE format($f$
        CREATE FUNCTION telemetry_series(rack text, t_from timestamptz, t_to timestamptz, resolution text DEFAULT NULL)
        RETURNS SETOF rack_minutes LANGUAGE plpgsql STABLE AS $body$
        BEGIN
            CASE coalesce(resolution, telemetry_resolution(t_from, t_to))
            WHEN 'raw' THEN
                RETURN QUERY SELECT occurred_at, %s, rack_id FROM telemetry
                    WHERE rack_id = rack AND occurred_at >= t_from AND occurred_at < t_to ORDER BY occurred_at, source;
            WHEN '1m' THEN
                RETURN QUERY SELECT * FROM rack_minutes_live(t_from, t_to, ARRAY[rack]) ORDER BY bucket;
            WHEN '1h' THEN
                RETURN QUERY SELECT * FROM rack_hours_live(t_from, t_to, ARRAY[rack]) ORDER BY bucket;
            ELSE
                RAISE EXCEPTION 'resolution must be raw, 1m or 1h, not %%', resolution USING ERRCODE = '22023';
            END CASE;
        END
        $body$ $f$, as_raw);
END
$generate$;

-- Facility rollups: one row per facility, hall and generation and minute (or hour). In minutes,
-- `power_watts_sum` is the sum of the racks' mean power in that minute; in hours it is the mean
-- of those minute sums (the group's mean power in the hour), likewise the flow. Racks are placed
-- by their current placement, `rack_lifecycle` (a rack moved later keeps the minutes already rolled up).
CREATE TABLE facility_hours (LIKE facility_minutes INCLUDING ALL) PARTITION BY RANGE (bucket);

-- Facility minutes from stored rack minutes (what the job stores).
CREATE FUNCTION facility_minutes_from_racks(t_from timestamptz, t_to timestamptz)
RETURNS SETOF facility_minutes LANGUAGE sql STABLE AS $$
    SELECT m.bucket, sum(m.power_watts_mean::double precision),
           sum(m.coolant_flow_liters_per_minute_mean::double precision),
           max(m.power_watts_max), max(m.inlet_temperature_celsius_max), max(m.outlet_temperature_celsius_max),
           max(m.coolant_return_temperature_celsius_max), max(m.hottest_accelerator_temperature_celsius_max),
           count(*)::integer, (count(*) FILTER (WHERE m.leak_detected_max))::integer,
           coalesce(s.facility_id, ''), coalesce(s.hall_id, ''), coalesce(s.generation, r.generation)
    FROM rack_minutes m
    JOIN racks r USING (rack_id)
    LEFT JOIN rack_lifecycle s USING (rack_id)
    WHERE m.bucket >= t_from AND m.bucket < t_to
    GROUP BY m.bucket, 11, 12, 13
$$;

-- The same straight from raw readings, for the live tail above the watermark: only the columns
-- facility rows need, so a panel does not pay for a rack minute's 49.
CREATE FUNCTION facility_minutes_from_raw(t_from timestamptz, t_to timestamptz)
RETURNS SETOF facility_minutes LANGUAGE sql STABLE AS $$
    SELECT m.bucket, sum(m.power::double precision), sum(m.flow::double precision),
           max(m.power_max), max(m.inlet_max), max(m.outlet_max), max(m.return_max), max(m.hottest_max),
           count(*)::integer, (count(*) FILTER (WHERE m.leak))::integer,
           coalesce(s.facility_id, ''), coalesce(s.hall_id, ''), coalesce(s.generation, r.generation)
    FROM (SELECT rack_id, date_bin('1 minute', occurred_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
                 avg(power_watts)::real AS power, avg(coolant_flow_liters_per_minute)::real AS flow,
                 max(power_watts) AS power_max, max(inlet_temperature_celsius) AS inlet_max,
                 max(outlet_temperature_celsius) AS outlet_max, max(coolant_return_temperature_celsius) AS return_max,
                 max(hottest_accelerator_temperature_celsius) AS hottest_max, bool_or(leak_detected) AS leak
          FROM telemetry WHERE occurred_at >= t_from AND occurred_at < t_to GROUP BY 1, 2) m
    JOIN racks r USING (rack_id)
    LEFT JOIN rack_lifecycle s USING (rack_id)
    GROUP BY m.bucket, 11, 12, 13
$$;

CREATE FUNCTION facility_minutes_live(t_from timestamptz, t_to timestamptz)
RETURNS SETOF facility_minutes LANGUAGE sql STABLE AS $$
    SELECT * FROM facility_minutes
    WHERE bucket >= date_bin('1 minute', t_from, timestamptz '2000-01-01 00:00:00+00')
      AND bucket < least(t_to, rollup_materialized_until())
    UNION ALL
    SELECT * FROM facility_minutes_from_raw(
        greatest(date_bin('1 minute', t_from, timestamptz '2000-01-01 00:00:00+00'), rollup_materialized_until()),
        t_to)
$$;

-- Facility hours from stored facility minutes (the job stores closed hours; the surface reads
-- the open one through this).
CREATE FUNCTION facility_hours_from_minutes(t_from timestamptz, t_to timestamptz)
RETURNS SETOF facility_minutes LANGUAGE sql STABLE AS $$
    SELECT date_bin('1 hour', bucket, timestamptz '2000-01-01 00:00:00+00'), avg(power_watts_sum),
           avg(coolant_flow_liters_per_minute_sum), max(power_watts_max), max(inlet_temperature_celsius_max),
           max(outlet_temperature_celsius_max), max(coolant_return_temperature_celsius_max),
           max(hottest_accelerator_temperature_celsius_max), max(racks), max(leaking_racks),
           facility_id, hall_id, generation
    FROM facility_minutes WHERE bucket >= t_from AND bucket < t_to
    GROUP BY 1, facility_id, hall_id, generation
$$;

-- The query surface for fleet and facility panels: facility minutes up to 8 days, hours beyond
-- (the same steps as telemetry_series). Stored rollups only, so up to the watermark (a minute
-- or two behind the raw rows): aggregating the raw tail of the whole fleet on every refresh
-- would cost a panel seconds at 10,000 racks (measured: bench/reports/grafana.md), while
-- one rack's series (telemetry_series) reads its tail live at no cost. `facility_minutes_live`
-- adds the tail for whoever needs it.
CREATE FUNCTION facility_series(t_from timestamptz, t_to timestamptz)
RETURNS SETOF facility_minutes LANGUAGE sql STABLE AS $$
    SELECT * FROM facility_minutes
    WHERE telemetry_resolution(t_from, t_to) <> '1h'
      AND bucket >= date_bin('1 minute', t_from, timestamptz '2000-01-01 00:00:00+00') AND bucket < t_to
    UNION ALL
    SELECT * FROM facility_hours
    WHERE telemetry_resolution(t_from, t_to) = '1h'
      AND bucket >= date_bin('1 hour', t_from, timestamptz '2000-01-01 00:00:00+00')
      AND bucket < least(t_to, date_bin('1 hour', rollup_materialized_until(), timestamptz '2000-01-01 00:00:00+00'))
    UNION ALL  -- the open hour (stored hours are closed ones), from its stored minutes
    SELECT * FROM facility_hours_from_minutes(
        greatest(date_bin('1 hour', t_from, timestamptz '2000-01-01 00:00:00+00'),
                 date_bin('1 hour', rollup_materialized_until(), timestamptz '2000-01-01 00:00:00+00')), t_to)
    WHERE telemetry_resolution(t_from, t_to) = '1h'
$$;

-- Rollup partitions: months for minutes, years for hours, created ahead by the job.
CREATE FUNCTION ensure_rollup_partitions(t_from timestamptz, t_to timestamptz) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    month date;
    year date;
    parent text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
                   WHERE c.relname = 'rack_minutes') THEN
        RETURN;  -- continuous aggregates (TimescaleDB) need no partitions
    END IF;
    FOR month IN SELECT generate_series(date_trunc('month', t_from AT TIME ZONE 'UTC'),
                                        date_trunc('month', t_to AT TIME ZONE 'UTC'), interval '1 month')::date
    LOOP
        FOREACH parent IN ARRAY ARRAY['rack_minutes', 'facility_minutes'] LOOP
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           parent || '_' || to_char(month, 'YYYYMM'), parent,
                           month::text || ' 00:00:00+00', (month + interval '1 month')::date::text || ' 00:00:00+00');
        END LOOP;
    END LOOP;
    FOR year IN SELECT generate_series(date_trunc('year', t_from AT TIME ZONE 'UTC'),
                                       date_trunc('year', t_to AT TIME ZONE 'UTC'), interval '1 year')::date
    LOOP
        FOREACH parent IN ARRAY ARRAY['rack_hours', 'facility_hours'] LOOP
            EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           parent || '_' || to_char(year, 'YYYY'), parent,
                           year::text || ' 00:00:00+00', (year + interval '1 year')::date::text || ' 00:00:00+00');
        END LOOP;
    END LOOP;
END
$$;

-- Rollup retention: drops whole partitions of `parent` that end before `cutoff`.
CREATE FUNCTION drop_rollup_partitions_before(parent text, cutoff timestamptz) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    IF parent NOT IN ('rack_minutes', 'rack_hours', 'facility_minutes', 'facility_hours') THEN
        RAISE EXCEPTION 'not a rollup table: %', parent USING ERRCODE = '22023';
    END IF;
    FOR part IN
        SELECT c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = parent
    LOOP
        IF part.upper <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$;

-- TimescaleDB's refresh and retention policies for the continuous aggregates made above
-- (UNTESTED HERE; static statements, so PL/pgSQL checks their syntax on every database).
DO $timescale$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        RETURN;
    END IF;
    PERFORM add_continuous_aggregate_policy('rack_minutes', start_offset => interval '3 hours',
                                            end_offset => interval '1 minute', schedule_interval => interval '1 minute');
    PERFORM add_continuous_aggregate_policy('rack_hours', start_offset => interval '3 days',
                                            end_offset => interval '1 hour', schedule_interval => interval '30 minutes');
    PERFORM add_retention_policy('rack_minutes', interval '90 days');
END
$timescale$;
