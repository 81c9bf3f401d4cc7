-- The version of the alert state the case view holds (notify's per-alert counter); NULL for a
-- state from an event without one (published before versions existed), ordered by time then.
ALTER TABLE intake.alerts ADD COLUMN version integer;
