-- The capacity-planning API: access tokens, and what its read queries need to be fast at
-- 100,000 racks (bench/api.py).

-- Bearer tokens, stored as the sha256 of the secret: the secret is 256 random bits, so a fast
-- hash is enough (nobody can brute-force 2^256), and a request is not slowed by bcrypt/argon2,
-- which exist to stretch low-entropy passwords. `owner` (a partner operator's name, as in
-- facilities.operator) narrows every read to that operator's facilities; NULL sees everything.
CREATE TABLE api_tokens (
    token_id     text PRIMARY KEY,
    name         text NOT NULL,
    secret_sha256 bytea NOT NULL UNIQUE,
    scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'admin'] AND cardinality(scopes) > 0),
    owner        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

-- Onshore share by part count of a rack's power, cooling, cabling and networking parts, from the
-- folded twin's bill of materials (twin.domain.components.onshore_share; a test keeps the kinds
-- and the country in step). IMMUTABLE so an index can hold it: the filter "onshore share below"
-- then reads the index instead of unpacking 100,000 bills of materials. Only the lifecycle path
-- rewrites `twin`, so the telemetry path's updates stay HOT.
CREATE FUNCTION rack_onshore_share(twin jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN count(*) = 0 THEN NULL
                ELSE (count(*) FILTER (WHERE c ->> 'country_of_manufacture' = 'US'))::double precision / count(*) END
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(twin -> 'components') = 'array'
                                   THEN twin -> 'components' ELSE '[]'::jsonb END) AS c
    WHERE c ->> 'kind' IN ('cabling', 'cdu', 'cooling-manifold', 'nic', 'power-shelf', 'psu', 'switch-tray')
$$;
CREATE INDEX rack_state_onshore_share ON rack_lifecycle (rack_onshore_share(twin));  -- rack_state's lifecycle side (0004)

-- Racks filtered by an open deviation rule (stalled, firmware drift, ...) without a scan.
CREATE INDEX deviations_check ON deviations (check_name text_pattern_ops, rack_id);
-- Placement and partner scope: racks by place.
CREATE INDEX rack_state_place ON rack_lifecycle (facility_id, hall_id, row_id) INCLUDE (generation, status);
-- Freshness: the newest commit of any worker.
CREATE INDEX consumer_offsets_updated ON consumer_offsets (updated_at);
-- Rack history and lead times: events by type (rack.entered_service, rack.rma_opened, ...).
CREATE INDEX events_type_stream ON events (type, stream_id);
