-- Settings this service generates itself, e.g. the webhook signing secret when none is configured.
CREATE TABLE notify.settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);

-- One alert per screening, whatever is redelivered.
CREATE TABLE notify.alerts (
    id                    uuid PRIMARY KEY,
    screening_id          uuid        NOT NULL UNIQUE,
    assessment_id         uuid        NOT NULL,
    risk_level            text        NOT NULL,
    urgency               text,
    reasons               jsonb       NOT NULL,
    status                text        NOT NULL
        CHECK (status IN ('pending', 'delivered', 'acknowledged', 'escalated', 'failed', 'resolved')),
    escalation_level      integer     NOT NULL DEFAULT 0,
    ack_deadline_seconds  integer     NOT NULL,
    escalate_at           timestamptz,          -- durable timer: next escalation if not acknowledged
    created_at            timestamptz NOT NULL,
    changed_at            timestamptz NOT NULL,
    first_delivered_at    timestamptz,
    acknowledged_at       timestamptz,
    acknowledged_by       text,
    correlation_id        text        NOT NULL
);
CREATE INDEX alerts_escalate_at ON notify.alerts (escalate_at) WHERE escalate_at IS NOT NULL;

-- One page to send (one escalation level of one alert); retried until delivered or given up.
-- event_id is the X-Triage-Event-Id: constant across retries so a receiver can deduplicate.
CREATE TABLE notify.deliveries (
    id                uuid PRIMARY KEY,
    alert_id          uuid        NOT NULL REFERENCES notify.alerts (id),
    escalation_level  integer     NOT NULL,
    status            text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts          integer     NOT NULL DEFAULT 0,
    due_at            timestamptz NOT NULL,   -- durable timer: next attempt
    lease_until       timestamptz,            -- claimed by a deliverer until then
    created_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    UNIQUE (alert_id, escalation_level)
);
CREATE INDEX deliveries_due ON notify.deliveries (due_at) WHERE status = 'pending';

CREATE TABLE notify.delivery_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid        NOT NULL REFERENCES notify.deliveries (id),
    attempt      integer     NOT NULL,
    target       text        NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    http_status  integer,
    outcome      text        NOT NULL CHECK (outcome IN ('delivered', 'temporary_failure', 'permanent_failure', 'cancelled')),
    error        text
);
CREATE INDEX delivery_attempts_delivery ON notify.delivery_attempts (delivery_id);

-- Wakes the deliverer when a page becomes due now (a new delivery), without polling.
CREATE FUNCTION notify.deliveries_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('notify_deliveries', '');
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_notify AFTER INSERT ON notify.deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION notify.deliveries_notify();
