-- Plumbing every service schema has: the transactional outbox and the processed-events table.
-- `{schema}` is the service's schema; shared/migrate.py applies this before the service's own files.

CREATE TABLE {schema}.outbox (
    id          bigserial PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    topic       text        NOT NULL,
    key         text        NOT NULL,
    value       bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Wakes the relay when a transaction that wrote to the outbox commits (NOTIFY is delivered on commit).
CREATE FUNCTION {schema}.outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{schema}_outbox', '');
    RETURN NULL;
END $$;

CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.outbox_notify();

CREATE TABLE {schema}.processed_events (
    event_id      uuid        PRIMARY KEY,
    topic         text        NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now()
);
