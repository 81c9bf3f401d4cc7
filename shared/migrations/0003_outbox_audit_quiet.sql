-- A statement that queued audit entries only (a read's entry) wakes nobody: the relay sends such
-- entries on its next timed pass, at most a second later (shared/outbox.py, AUDIT_FLUSH_SECONDS),
-- together with every other read's. A NOTIFY per read signalled every listening backend of the
-- database for each case view, which cost the read more than its entry. Work on the alert path
-- still wakes the relay at once, and the entries waiting go out with it. The entry is durable
-- in the outbox either way.
CREATE OR REPLACE FUNCTION {schema}.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted WHERE topic <> 'triage.audit.v1') THEN
        PERFORM pg_notify('{schema}_outbox', '');
    END IF;
    RETURN NULL;
END $$;
