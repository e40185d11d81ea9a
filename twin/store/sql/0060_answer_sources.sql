-- What the API's cached answers depend on beyond the summary tables (twin/api/answer_cache.py).
--
-- The fleet summary reads only the summary tables of 0023, whose rebuild time
-- (summary_refreshes.refreshed_at) changes in the same transaction as their content. Headroom
-- also reads the places themselves live: facilities (their operator scopes a partner's answer),
-- halls and rows (positions, power and cooling limits). A registration that changes one of
-- them bumps `places` here, in the same transaction as the change, so an answer cached under
-- the old version is never served after the change commits. Rows are touched only when a
-- registration really changes something (rare), so writers do not queue on this row.
CREATE TABLE answer_sources (
    name    text PRIMARY KEY,
    version bigint NOT NULL
);
INSERT INTO answer_sources VALUES ('places', 0);

CREATE FUNCTION bump_places_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE answer_sources SET version = version + 1 WHERE name = 'places';
    RETURN NULL;
END
$$;

CREATE TRIGGER facilities_places_written AFTER INSERT OR DELETE ON facilities
    FOR EACH ROW EXECUTE FUNCTION bump_places_version();
CREATE TRIGGER facilities_places_updated AFTER UPDATE ON facilities
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION bump_places_version();
CREATE TRIGGER facilities_places_truncated AFTER TRUNCATE ON facilities
    FOR EACH STATEMENT EXECUTE FUNCTION bump_places_version();

CREATE TRIGGER halls_places_written AFTER INSERT OR DELETE ON halls
    FOR EACH ROW EXECUTE FUNCTION bump_places_version();
CREATE TRIGGER halls_places_updated AFTER UPDATE ON halls
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION bump_places_version();
CREATE TRIGGER halls_places_truncated AFTER TRUNCATE ON halls
    FOR EACH STATEMENT EXECUTE FUNCTION bump_places_version();

CREATE TRIGGER rows_places_written AFTER INSERT OR DELETE ON rows
    FOR EACH ROW EXECUTE FUNCTION bump_places_version();
CREATE TRIGGER rows_places_updated AFTER UPDATE ON rows
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION bump_places_version();
CREATE TRIGGER rows_places_truncated AFTER TRUNCATE ON rows
    FOR EACH STATEMENT EXECUTE FUNCTION bump_places_version();
