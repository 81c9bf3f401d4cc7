-- Follow-up after the call (services/intake/follow_ups): a flagged screening opens one follow-up,
-- due FOLLOW_UP_FIRST_HOURS after it; staff record each attempt to reach the person (the note is
-- PHI, stored encrypted by the application); after FOLLOW_UP_MAX_ATTEMPTS unsuccessful ones the
-- follow-up is `unreachable` and a task goes to the supervisor.
CREATE TABLE intake.follow_ups (
    id uuid PRIMARY KEY,
    screening_id uuid NOT NULL UNIQUE REFERENCES intake.screenings (id),
    status text NOT NULL CHECK (status IN ('open', 'completed', 'unreachable')),
    risk_level text NOT NULL,
    -- The last attempt's outcome; NULL before the first attempt.
    outcome text,
    attempts integer NOT NULL DEFAULT 0,
    due_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    closed_at timestamptz,
    -- The due time whose passing was announced (`follow_up.overdue`), once per due time.
    overdue_notified_for timestamptz,
    correlation_id text
);
-- The worklist, most overdue first.
CREATE INDEX follow_ups_open_due ON intake.follow_ups (due_at, id) WHERE status = 'open';

CREATE TABLE intake.follow_up_attempts (
    follow_up_id uuid NOT NULL REFERENCES intake.follow_ups (id),
    number integer NOT NULL CHECK (number >= 1),
    outcome text NOT NULL CHECK (outcome IN ('reached', 'no_answer', 'left_message', 'declined',
                                             'in_treatment', 'wrong_number')),
    -- PHI: the caller's free text, encrypted (shared/phi.py).
    note text,
    actor text NOT NULL,
    role text NOT NULL,
    at timestamptz NOT NULL,
    PRIMARY KEY (follow_up_id, number)
);

-- Work for people that no timer can do: a follow-up nobody could reach (for the supervisor),
-- a reply from the person (for the team).
CREATE TABLE intake.follow_up_tasks (
    id uuid PRIMARY KEY,
    follow_up_id uuid NOT NULL REFERENCES intake.follow_ups (id),
    kind text NOT NULL CHECK (kind IN ('unreachable', 'reply')),
    for_role text NOT NULL CHECK (for_role IN ('supervisor', 'team')),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done')),
    -- The reply a `reply` task is about (intake.caring_replies), when there is one.
    reply_id uuid,
    created_at timestamptz NOT NULL,
    done_by text,
    done_at timestamptz
);
CREATE INDEX follow_up_tasks_follow_up ON intake.follow_up_tasks (follow_up_id, created_at);
CREATE INDEX follow_up_tasks_open ON intake.follow_up_tasks (created_at) WHERE status = 'open';

-- Wakes the overdue watcher of every intake replica when a follow-up opens, closes or its due
-- time moves, so it sleeps until the earliest due time instead of polling.
CREATE FUNCTION intake.follow_ups_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_follow_ups', '');
    RETURN NULL;
END $$;
CREATE TRIGGER follow_ups_notify AFTER INSERT OR UPDATE OF due_at, status ON intake.follow_ups
    FOR EACH STATEMENT EXECUTE FUNCTION intake.follow_ups_notify();
