-- Telemetry narrowed: the same facts in fewer bytes per row (issue 10).
--
-- 0002 stored every value as double precision, and rack_id first, which left padding between a
-- text column and the 8-byte values after it. Every field has a physical range that fits a
-- narrower type exactly enough (schemas/telemetry.py): power up to 1.5 MW in a real is exact to
-- 0.125 W, temperatures and flows to far less than a sensor's resolution, link counts up to
-- 10,000 in a smallint. Columns go widest first (8-byte time, 4-byte reals, 2-byte smallints,
-- the boolean, then the variable-length texts) so no byte is padding. The occurred_at b-tree
-- (16 B per row) becomes a BRIN index (a few pages per day): rows arrive in time order, and
-- per-rack ranges are served by the primary key. Daily partitions are created with
-- fillfactor 100: readings are never updated.
--
-- The existing table (either path) is rebuilt under the new layout and its rows copied.
DO $$
DECLARE
    has_timescale boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');
    part record;
BEGIN
    CREATE TABLE telemetry_narrow (
        occurred_at                               timestamptz NOT NULL,
        power_watts                               real NOT NULL,
        inlet_temperature_celsius                 real NOT NULL,
        outlet_temperature_celsius                real NOT NULL,
        coolant_supply_temperature_celsius        real NOT NULL,
        coolant_return_temperature_celsius        real NOT NULL,
        coolant_flow_liters_per_minute            real NOT NULL,
        coolant_differential_pressure_kilopascals real NOT NULL,
        hottest_accelerator_temperature_celsius   real NOT NULL,
        fan_speed_percent                         real NOT NULL,
        network_links_up                          smallint NOT NULL,
        network_links_down                        smallint NOT NULL,
        leak_detected                             boolean NOT NULL,
        rack_id                                   text NOT NULL,
        source                                    text NOT NULL,
        CONSTRAINT telemetry_narrow_pkey PRIMARY KEY (rack_id, occurred_at, source)
    ) PARTITION BY RANGE (occurred_at);

    IF has_timescale THEN
        -- UNTESTED HERE (TimescaleDB cannot be installed on the development machines): a
        -- hypertable is not declared with PARTITION BY, so the partitioned draft is replaced.
        DROP TABLE telemetry_narrow;
        CREATE TABLE telemetry_narrow (
            occurred_at                               timestamptz NOT NULL,
            power_watts                               real NOT NULL,
            inlet_temperature_celsius                 real NOT NULL,
            outlet_temperature_celsius                real NOT NULL,
            coolant_supply_temperature_celsius        real NOT NULL,
            coolant_return_temperature_celsius        real NOT NULL,
            coolant_flow_liters_per_minute            real NOT NULL,
            coolant_differential_pressure_kilopascals real NOT NULL,
            hottest_accelerator_temperature_celsius   real NOT NULL,
            fan_speed_percent                         real NOT NULL,
            network_links_up                          smallint NOT NULL,
            network_links_down                        smallint NOT NULL,
            leak_detected                             boolean NOT NULL,
            rack_id                                   text NOT NULL,
            source                                    text NOT NULL,
            CONSTRAINT telemetry_narrow_pkey PRIMARY KEY (rack_id, occurred_at, source)
        );
        PERFORM create_hypertable('telemetry_narrow', 'occurred_at', chunk_time_interval => interval '1 day');
        INSERT INTO telemetry_narrow SELECT
            occurred_at, power_watts, inlet_temperature_celsius, outlet_temperature_celsius,
            coolant_supply_temperature_celsius, coolant_return_temperature_celsius, coolant_flow_liters_per_minute,
            coolant_differential_pressure_kilopascals, hottest_accelerator_temperature_celsius, fan_speed_percent,
            network_links_up, network_links_down, leak_detected, rack_id, source
        FROM telemetry;
        DROP TABLE telemetry;
        ALTER TABLE telemetry_narrow RENAME TO telemetry;
        ALTER INDEX telemetry_narrow_pkey RENAME TO telemetry_pkey;
        ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'rack_id',
                                   timescaledb.compress_orderby = 'occurred_at DESC');
        PERFORM add_compression_policy('telemetry', interval '2 days');
        PERFORM add_retention_policy('telemetry', interval '14 days');
        RETURN;
    END IF;

    FOR part IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'telemetry'
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF telemetry_narrow %s WITH (fillfactor = 100)',
                       'narrow_' || part.relname, part.bound);
    END LOOP;
    INSERT INTO telemetry_narrow (occurred_at, power_watts, inlet_temperature_celsius, outlet_temperature_celsius,
                                  coolant_supply_temperature_celsius, coolant_return_temperature_celsius,
                                  coolant_flow_liters_per_minute, coolant_differential_pressure_kilopascals,
                                  hottest_accelerator_temperature_celsius, fan_speed_percent, network_links_up,
                                  network_links_down, leak_detected, rack_id, source)
    SELECT occurred_at, power_watts, inlet_temperature_celsius, outlet_temperature_celsius,
           coolant_supply_temperature_celsius, coolant_return_temperature_celsius, coolant_flow_liters_per_minute,
           coolant_differential_pressure_kilopascals, hottest_accelerator_temperature_celsius, fan_speed_percent,
           network_links_up, network_links_down, leak_detected, rack_id, source
    FROM telemetry ORDER BY occurred_at;
    DROP TABLE telemetry;
    ALTER TABLE telemetry_narrow RENAME TO telemetry;
    ALTER INDEX telemetry_narrow_pkey RENAME TO telemetry_pkey;
    FOR part IN
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'telemetry'
    LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', part.relname, substr(part.relname, 8));
    END LOOP;
END
$$;

CREATE INDEX telemetry_occurred ON telemetry USING brin (occurred_at);

-- Daily partitions as 0002 made them, now with fillfactor 100 stated (append-only facts).
CREATE OR REPLACE FUNCTION ensure_telemetry_partition(day date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    part text := format('telemetry_%s', to_char(day, 'YYYYMMDD'));
BEGIN
    IF to_regclass(part) IS NOT NULL
       OR NOT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
                      WHERE c.relname = 'telemetry') THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(part));  -- two workers may meet the same new day
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)'
                   ' WITH (fillfactor = 100)',
                   part, day::text || ' 00:00:00+00', (day + 1)::text || ' 00:00:00+00');
END
$$;
