-- Room on every page for the current-state rows to be rewritten in place.
-- The telemetry path rewrites each reporting rack's rack_state row once per batch (once a
-- second per rack at steady state) and deviations as they change. Those updates touch no
-- indexed column, so with free space on the page PostgreSQL keeps them HOT: no new index
-- entries and no index bloat. At the default fillfactor of 100 every update left its page.
ALTER TABLE rack_state SET (fillfactor = 50);
ALTER TABLE deviations SET (fillfactor = 70);
