-- The relay's wake-up says whether a statement queued audit entries only ('audit') or anything
-- else (''). Work on the alert path wakes the relay at once, as before; an audit entry alone (a
-- read) lets it wait a moment, so entries of many reads go out in one pass rather than one pass
-- each (shared/outbox.py, AUDIT_COALESCE_SECONDS). The entry is durable in the outbox either way.
CREATE OR REPLACE FUNCTION {schema}.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(
        '{schema}_outbox',
        CASE WHEN EXISTS (SELECT 1 FROM inserted WHERE topic <> 'triage.audit.v1')
             THEN '' ELSE 'audit' END);
    RETURN NULL;
END $$;

DROP TRIGGER outbox_notify ON {schema}.outbox;
CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.outbox_notify();
