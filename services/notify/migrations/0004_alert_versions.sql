-- Every change of an alert bumps its version, and its event carries it: intake orders the case
-- view's copy by version, not by time. A timestamp taken before the alert's lock, or by another
-- replica's clock, could otherwise put an older state over a newer one.
ALTER TABLE notify.alerts ADD COLUMN version integer NOT NULL DEFAULT 0;
