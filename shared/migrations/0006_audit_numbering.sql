-- Each service numbers its audit entries 1, 2, 3, … without gaps, so `triage audit verify` sees
-- an entry that never reached the trail (deleted from the outbox before the relay sent it, or
-- its id put in intake's processed_events so the consumer dropped it): its number is missing.
-- The number is given at commit (a deferred constraint trigger), not at insert: a plain
-- sequence leaves gaps on rollback, and a counter taken at insert would hold its row lock for
-- the whole request transaction. Here the lock is held from the commit's start to its end only.
-- The number goes into the event's data (`service_seq`), which the entry's chain hash covers.
CREATE TABLE {schema}.audit_counter (
    one  boolean PRIMARY KEY DEFAULT true CHECK (one),
    n    bigint  NOT NULL
);
INSERT INTO {schema}.audit_counter (n) VALUES (0);

CREATE FUNCTION {schema}.audit_number() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event jsonb;
    next  bigint;
BEGIN
    SELECT convert_from(value, 'UTF8')::jsonb INTO event FROM {schema}.outbox WHERE id = NEW.id;
    -- Gone already (sent within the transaction is impossible; deleted in it: nothing to number),
    -- or numbered before (an entry put back from the set-aside table keeps its number).
    IF event IS NULL OR jsonb_typeof(event #> '{data,service_seq}') = 'number' THEN
        RETURN NULL;
    END IF;
    UPDATE {schema}.audit_counter SET n = n + 1 RETURNING n INTO next;
    UPDATE {schema}.outbox
       SET value = convert_to(jsonb_set(event, '{data,service_seq}', to_jsonb(next))::text, 'UTF8')
     WHERE id = NEW.id;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER outbox_audit_number AFTER INSERT ON {schema}.outbox
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.topic = 'triage.audit.v1')
    EXECUTE FUNCTION {schema}.audit_number();
