-- FHIR integration: where a FHIR screening came from, EHR rest-hooks, and their pushes.

-- The source of a screening posted as a QuestionnaireResponse. Not the resource itself: only what
-- a RiskAssessment needs to refer back to it (identifier, the EHR's id, the subject reference).
CREATE TABLE intake.fhir_responses (
    screening_id       uuid PRIMARY KEY REFERENCES intake.screenings (id),
    identifier_system  text,
    identifier_value   text,
    resource_id        text,
    questionnaire      text,
    status             text        NOT NULL,
    authored           text,
    subject            jsonb       NOT NULL,
    created_at         timestamptz NOT NULL
);
CREATE INDEX fhir_responses_identifier_system ON intake.fhir_responses (identifier_system);

-- An EHR's rest-hook: where RiskAssessments of the screenings it identified with its system go.
-- secret signs the pushes (HMAC needs it in clear); it never leaves this table except on creation.
CREATE TABLE intake.fhir_subscriptions (
    id                 uuid PRIMARY KEY,
    identifier_system  text        NOT NULL,
    endpoint           text        NOT NULL,
    secret             text        NOT NULL,
    status             text        NOT NULL CHECK (status IN ('active', 'off')),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    UNIQUE (identifier_system, endpoint)
);

-- One RiskAssessment to push to one subscription; retried until delivered or given up.
-- id is the X-Triage-Event-Id, constant across retries; body is the exact JSON that is signed.
CREATE TABLE intake.fhir_pushes (
    id               uuid PRIMARY KEY,
    subscription_id  uuid        NOT NULL REFERENCES intake.fhir_subscriptions (id),
    screening_id     uuid        NOT NULL REFERENCES intake.screenings (id),
    assessment_id    uuid        NOT NULL,
    body             text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL,   -- durable timer: next attempt
    lease_until      timestamptz,            -- claimed by a pusher until then
    created_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    UNIQUE (subscription_id, assessment_id)
);
CREATE INDEX fhir_pushes_due ON intake.fhir_pushes (due_at) WHERE status = 'pending';
CREATE INDEX fhir_pushes_screening ON intake.fhir_pushes (screening_id);

CREATE TABLE intake.fhir_push_attempts (
    id           bigserial PRIMARY KEY,
    push_id      uuid        NOT NULL REFERENCES intake.fhir_pushes (id),
    attempt      integer     NOT NULL,
    target       text        NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    http_status  integer,
    outcome      text        NOT NULL CHECK (outcome IN ('delivered', 'temporary_failure', 'permanent_failure')),
    error        text
);
CREATE INDEX fhir_push_attempts_push ON intake.fhir_push_attempts (push_id);

-- Wakes the pusher when a push is committed (NOTIFY is delivered on commit): no polling.
CREATE FUNCTION intake.fhir_pushes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_fhir_pushes', '');
    RETURN NULL;
END $$;
CREATE TRIGGER fhir_pushes_notify AFTER INSERT ON intake.fhir_pushes
    FOR EACH STATEMENT EXECUTE FUNCTION intake.fhir_pushes_notify();
