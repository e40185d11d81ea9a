-- Wake the alert engine when a deviation appears or goes, instead of waiting for its next tick.
-- Statement-level triggers with transition tables: a worker's batch that opens or closes no
-- deviation (most batches: open ones are updated in place) notifies no one, and one that does
-- sends one notification per statement, delivered at commit (NOTIFY is transactional).
CREATE FUNCTION notify_alert_engine() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed) THEN
        PERFORM pg_notify('twin_deviations', TG_OP);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER deviations_opened AFTER INSERT ON deviations
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_alert_engine();
CREATE TRIGGER deviations_closed AFTER DELETE ON deviations
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_alert_engine();
