-- Every refusal becomes a dead letter exactly once.
--
-- A fold refusal (illegal-transition, missing-tests) is a verdict on a stored event, and a late
-- event can change it for events that arrived long before. So each stored event keeps where it
-- came from (topic, partition, offset): its refusal is lettered under that message, whichever
-- later message caused the verdict, and settled again after every replay of its rack. An event
-- stored before this migration has no origin; its letter keeps the message that caused it.
ALTER TABLE events ADD COLUMN topic text, ADD COLUMN partition integer, ADD COLUMN "offset" bigint;

-- A report delivered twice (a producer repeat: same event_id, another offset) has its bad
-- readings lettered once: a reading's letter is found by (report event_id, index).
CREATE INDEX deadletters_report_reading ON deadletters (event_id, idx) WHERE idx >= 0;
-- Open fold refusals of a rack (settled after each replay).
CREATE INDEX deadletters_rack_open ON deadletters (rack_id) WHERE replayed_at IS NULL;
