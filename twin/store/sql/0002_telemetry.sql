-- Telemetry readings as time-series facts: append-only, time-partitioned.
-- The identity of a reading is (rack_id, occurred_at, source): a repeated report is a no-op.
-- With TimescaleDB: a hypertable with compression and retention. Without (PostgreSQL from the
-- embedded wheel, what tests exercise): native daily range partitions that twin.store creates
-- ahead of the data (ensure_telemetry_partitions).
DO $$
DECLARE
    has_timescale boolean := EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb');
BEGIN
    IF has_timescale THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    END IF;

    EXECUTE $ddl$
        CREATE TABLE telemetry (
            rack_id     text NOT NULL,
            occurred_at timestamptz NOT NULL,
            source      text NOT NULL,
            power_watts double precision NOT NULL,
            inlet_temperature_celsius double precision NOT NULL,
            outlet_temperature_celsius double precision NOT NULL,
            coolant_supply_temperature_celsius double precision NOT NULL,
            coolant_return_temperature_celsius double precision NOT NULL,
            coolant_flow_liters_per_minute double precision NOT NULL,
            coolant_differential_pressure_kilopascals double precision NOT NULL,
            leak_detected boolean NOT NULL,
            hottest_accelerator_temperature_celsius double precision NOT NULL,
            fan_speed_percent double precision NOT NULL,
            network_links_up integer NOT NULL,
            network_links_down integer NOT NULL,
            PRIMARY KEY (rack_id, occurred_at, source)
        )
    $ddl$ || CASE WHEN has_timescale THEN '' ELSE ' PARTITION BY RANGE (occurred_at)' END;

    IF has_timescale THEN
        PERFORM create_hypertable('telemetry', 'occurred_at', chunk_time_interval => interval '1 day');
        EXECUTE $c$ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'rack_id')$c$;
        PERFORM add_compression_policy('telemetry', interval '2 days');
        PERFORM add_retention_policy('telemetry', interval '14 days');
    END IF;
END
$$;

CREATE INDEX telemetry_occurred ON telemetry (occurred_at);

-- Creates the daily partition holding `day` if it does not exist yet (no-op under TimescaleDB).
CREATE FUNCTION ensure_telemetry_partition(day date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    part text := format('telemetry_%s', to_char(day, 'YYYYMMDD'));
BEGIN
    IF to_regclass(part) IS NOT NULL
       OR NOT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
                      WHERE c.relname = 'telemetry') THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(part));  -- two workers may meet the same new day
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)',
                   part, day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
END
$$;

-- Native-partitioning retention: drops whole daily partitions older than `keep` (raw rows are
-- kept for days; rollups for years). Returns how many partitions went.
CREATE FUNCTION drop_telemetry_partitions_before(cutoff date) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'telemetry' AND c.relname ~ '^telemetry_[0-9]{8}$'
          AND to_date(substr(c.relname, 11), 'YYYYMMDD') < cutoff
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END
$$;
