-- The person's language (from the assessment event; 'en' for events from before languages) and
-- whether nobody on call speaks it when the alert opened or last moved on a step: the case view
-- shows `interpreter_needed` (published on the alert's events; no PHI).
ALTER TABLE notify.alerts
    ADD COLUMN language text NOT NULL DEFAULT 'en',
    ADD COLUMN interpreter_needed boolean NOT NULL DEFAULT false;
