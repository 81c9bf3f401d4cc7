-- On call: clinicians and their contact methods, schedules (rotations + overrides), escalation
-- policies, and deliveries per (alert, round, level, contact method) instead of per level.

CREATE TABLE notify.clinicians (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL
);

-- How a clinician is reached, tried in `position` order, each `delay_seconds` after its level pages.
CREATE TABLE notify.contact_methods (
    id             uuid PRIMARY KEY,
    clinician_id   uuid        NOT NULL REFERENCES notify.clinicians (id),
    kind           text        NOT NULL CHECK (kind IN ('webhook', 'email')),
    address        text        NOT NULL,
    position       integer     NOT NULL,
    delay_seconds  integer     NOT NULL DEFAULT 0 CHECK (delay_seconds >= 0),
    created_at     timestamptz NOT NULL,
    deleted_at     timestamptz            -- kept for the deliveries that name it
);
CREATE INDEX contact_methods_clinician ON notify.contact_methods (clinician_id) WHERE deleted_at IS NULL;

CREATE TABLE notify.schedules (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL,
    changed_at  timestamptz NOT NULL
);

-- Layers of a schedule. Start and end are wall-clock times in time_zone (handoffs stay at the
-- same local time across daylight-saving changes).
CREATE TABLE notify.rotations (
    id             uuid PRIMARY KEY,
    schedule_id    uuid        NOT NULL REFERENCES notify.schedules (id) ON DELETE CASCADE,
    layer          integer     NOT NULL,
    clinician_ids  uuid[]      NOT NULL,
    shift_hours    integer     NOT NULL CHECK (shift_hours > 0),
    starts_local   timestamp   NOT NULL,
    ends_local     timestamp,
    time_zone      text        NOT NULL,
    UNIQUE (schedule_id, layer)
);

-- A clinician covering a window of a schedule, above every rotation.
CREATE TABLE notify.overrides (
    id            uuid PRIMARY KEY,
    schedule_id   uuid        NOT NULL REFERENCES notify.schedules (id) ON DELETE CASCADE,
    clinician_id  uuid        NOT NULL REFERENCES notify.clinicians (id),
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz NOT NULL CHECK (ends_at > starts_at),
    created_at    timestamptz NOT NULL
);
CREATE INDEX overrides_window ON notify.overrides (schedule_id, starts_at, ends_at);

-- Ordered levels (JSON: [{"delay_seconds", "schedule_id", "clinician_ids"}]), repeated `repeats`
-- more times until acknowledged. A deleted policy keeps its row for the alerts that follow it.
CREATE TABLE notify.policies (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL,
    levels      jsonb       NOT NULL,
    repeats     integer     NOT NULL DEFAULT 0 CHECK (repeats >= 0),
    created_at  timestamptz NOT NULL,
    changed_at  timestamptz NOT NULL,
    deleted_at  timestamptz
);

-- Which policy an alert of each risk level follows (at most one per level).
CREATE TABLE notify.policy_risk_levels (
    risk_level  text PRIMARY KEY CHECK (risk_level IN ('moderate', 'high', 'imminent')),
    policy_id   uuid NOT NULL REFERENCES notify.policies (id)
);

ALTER TABLE notify.alerts
    ADD COLUMN policy_id     uuid REFERENCES notify.policies (id),   -- NULL: the fallback plan
    ADD COLUMN repeat_round  integer NOT NULL DEFAULT 0,
    ADD COLUMN assessed_at   timestamptz,
    ADD COLUMN resolved_at   timestamptz;

-- One delivery per (alert, round, level, contact method); NULL contact method = ONCALL_WEBHOOK_URL.
ALTER TABLE notify.deliveries
    DROP CONSTRAINT deliveries_alert_id_escalation_level_key,
    ADD COLUMN repeat_round       integer NOT NULL DEFAULT 0,
    ADD COLUMN contact_method_id  uuid REFERENCES notify.contact_methods (id),
    ADD COLUMN channel            text    NOT NULL DEFAULT 'webhook' CHECK (channel IN ('webhook', 'email')),
    ADD COLUMN target             text,   -- the address when the delivery was planned; NULL: fallback
    ADD CONSTRAINT deliveries_one_per_step
        UNIQUE NULLS NOT DISTINCT (alert_id, repeat_round, escalation_level, contact_method_id);
CREATE INDEX deliveries_alert ON notify.deliveries (alert_id) WHERE status = 'pending';

-- Which replica sent each attempt (host:pid), for audits of "never both fire the same step".
ALTER TABLE notify.delivery_attempts ADD COLUMN worker text;

-- Wake every replica's deliverer when a timer moves, not only when a page is added, so a replica
-- that takes over from a dead one already knows the next due time.
CREATE TRIGGER deliveries_due_changed AFTER UPDATE OF due_at ON notify.deliveries
    FOR EACH STATEMENT EXECUTE FUNCTION notify.deliveries_notify();
CREATE TRIGGER alerts_escalate_at_changed AFTER UPDATE OF escalate_at ON notify.alerts
    FOR EACH STATEMENT EXECUTE FUNCTION notify.deliveries_notify();
