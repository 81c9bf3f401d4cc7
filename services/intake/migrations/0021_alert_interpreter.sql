-- The case view's copy of an alert learns from notify's alert events whether nobody on call
-- speaks the person's language (`interpreter_needed`). NULL: from an event without it.
ALTER TABLE intake.alerts ADD COLUMN interpreter_needed boolean;
