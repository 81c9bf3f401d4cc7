-- Rows the relay could never publish (their topic does not exist, the broker refuses their
-- size): set aside here with the reason, so they stop blocking every row behind them. `triage
-- dlq list` shows them and `triage dlq replay` puts them back in the outbox once the cause is
-- fixed (shared/outbox.py).
CREATE TABLE {schema}.outbox_set_aside (
    id           bigint      PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    value        bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    reason       text        NOT NULL,
    set_aside_at timestamptz NOT NULL DEFAULT now()
);
