-- Redfish collector and topology (issue 12).
--
-- 1. A reading's quantities may be NULL: "no source of this report measures it" (a BMC without
--    a Thermal resource, an air-cooled rack without a CDU). Never a faked value.
ALTER TABLE telemetry
    ALTER COLUMN power_watts DROP NOT NULL,
    ALTER COLUMN inlet_temperature_celsius DROP NOT NULL,
    ALTER COLUMN outlet_temperature_celsius DROP NOT NULL,
    ALTER COLUMN coolant_supply_temperature_celsius DROP NOT NULL,
    ALTER COLUMN coolant_return_temperature_celsius DROP NOT NULL,
    ALTER COLUMN coolant_flow_liters_per_minute DROP NOT NULL,
    ALTER COLUMN coolant_differential_pressure_kilopascals DROP NOT NULL,
    ALTER COLUMN leak_detected DROP NOT NULL,
    ALTER COLUMN hottest_accelerator_temperature_celsius DROP NOT NULL,
    ALTER COLUMN fan_speed_percent DROP NOT NULL,
    ALTER COLUMN network_links_up DROP NOT NULL,
    ALTER COLUMN network_links_down DROP NOT NULL;

-- 2. Topology as fleet facts (schemas/topology.py): the latest declaration of a loop or feed
--    replaces its racks. Keyed by rack too, so "which loop/feeds does rack R hang on" is an index
--    lookup. No foreign key to racks: a loop may be declared before its racks are installed.
CREATE TABLE coolant_loops (
    loop_id         text PRIMARY KEY,
    cooling_unit_id text NOT NULL,
    declared_at     timestamptz NOT NULL
);
CREATE INDEX coolant_loops_cdu ON coolant_loops (cooling_unit_id);

CREATE TABLE coolant_loop_racks (
    loop_id text NOT NULL REFERENCES coolant_loops ON DELETE CASCADE,
    rack_id text NOT NULL,
    PRIMARY KEY (loop_id, rack_id)
);
CREATE INDEX coolant_loop_racks_rack ON coolant_loop_racks (rack_id);

CREATE TABLE power_feeds (
    feed_id     text PRIMARY KEY,
    side        text NOT NULL CHECK (side IN ('A', 'B')),
    panel       text,
    pdus        text[] NOT NULL DEFAULT '{}',
    declared_at timestamptz NOT NULL
);

CREATE TABLE power_feed_racks (
    feed_id text NOT NULL REFERENCES power_feeds ON DELETE CASCADE,
    rack_id text NOT NULL,
    PRIMARY KEY (feed_id, rack_id)
);
CREATE INDEX power_feed_racks_rack ON power_feed_racks (rack_id);
