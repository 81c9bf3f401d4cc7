-- Reminders to the on-call clinician, one per overdue safety plan whatever is redelivered.
-- A reminder is a durable timer like a delivery: due_at is the next attempt, lease_until the
-- claim of the sender working on it. It holds ids, the level and the due time: no PHI.
CREATE TABLE notify.reminders (
    id                uuid PRIMARY KEY,            -- the X-Triage-Event-Id, constant across retries
    kind              text        NOT NULL CHECK (kind IN ('safety_plan_overdue')),
    plan_id           uuid        NOT NULL UNIQUE,
    screening_id      uuid        NOT NULL,
    risk_level        text        NOT NULL,
    plan_due_at       timestamptz NOT NULL,
    status            text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer     NOT NULL DEFAULT 0,
    due_at            timestamptz NOT NULL,
    lease_until       timestamptz,
    last_http_status  integer,
    last_error        text,
    created_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    correlation_id    text        NOT NULL
);
CREATE INDEX reminders_due ON notify.reminders (due_at) WHERE status = 'pending';

-- Wakes the reminder sender when a reminder is recorded, without polling.
CREATE FUNCTION notify.reminders_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notify_reminders', '');
    RETURN NULL;
END $$;
CREATE TRIGGER reminders_notify AFTER INSERT ON notify.reminders
    FOR EACH STATEMENT EXECUTE FUNCTION notify.reminders_notify();
