-- Each service numbers its audit entries 1, 2, 3, … without gaps, so `triage audit verify` sees
-- an entry that never reached the trail (deleted from the outbox before the relay sent it, or
-- its id put in intake's processed_events so the consumer dropped it): its number is missing.
-- The number is given at commit (a deferred constraint trigger), not at insert: a plain
-- sequence leaves gaps on rollback, and a counter taken at insert would hold its row lock for
-- the whole request transaction. Here a counter's lock is held from the commit's start to its
-- end only; and there are 16 counters ("lanes", one per connection: backend pid mod 16), so
-- concurrent commits rarely wait for one another (one counter for all cost 2x per audited
-- commit at 4 concurrent connections, waiting on each other's WAL flush). Each lane counts
-- 1, 2, 3, … without gaps; the entry's number is count * 16 + lane, in the event's data
-- (`service_seq`), which the entry's chain hash covers.
CREATE TABLE {schema}.audit_counter (
    lane  smallint PRIMARY KEY CHECK (lane BETWEEN 0 AND 15),
    n     bigint   NOT NULL
);
INSERT INTO {schema}.audit_counter (lane, n) SELECT lane, 0 FROM generate_series(0, 15) AS lane;

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
    UPDATE {schema}.audit_counter SET n = n + 1 WHERE lane = pg_backend_pid() % 16
    RETURNING n * 16 + lane INTO next;
    UPDATE {schema}.outbox
       SET value = convert_to(jsonb_set(event, '{data,service_seq}', to_jsonb(next))::text, 'UTF8')
     WHERE id = NEW.id;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER outbox_audit_number AFTER INSERT ON {schema}.outbox
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.topic = 'triage.audit.v1')
    EXECUTE FUNCTION {schema}.audit_number();
