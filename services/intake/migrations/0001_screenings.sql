-- Screenings as received. contact and notes are PHI: they live here and nowhere else.
CREATE TABLE intake.screenings (
    id               uuid PRIMARY KEY,
    subject_id       text        NOT NULL,
    source           text        NOT NULL CHECK (source IN ('hotline', 'ehr')),
    external_id      text,
    instrument       text        NOT NULL,
    answers          jsonb       NOT NULL,
    imminent_danger  boolean     NOT NULL DEFAULT false,
    contact          jsonb,
    notes            text,
    request_hash     text        NOT NULL,
    status           text        NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'assessed')),
    risk             jsonb,
    received_at      timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
-- An EHR's resend of the same message is the same screening.
CREATE UNIQUE INDEX screenings_source_external_id ON intake.screenings (source, external_id)
    WHERE external_id IS NOT NULL;

CREATE TABLE intake.idempotency_keys (
    key           text PRIMARY KEY,
    request_hash  text        NOT NULL,
    screening_id  uuid        NOT NULL REFERENCES intake.screenings (id),
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- The case view's copy of notify's alerts, kept current from triage.alert.events.v1.
CREATE TABLE intake.alerts (
    id                uuid PRIMARY KEY,
    screening_id      uuid        NOT NULL REFERENCES intake.screenings (id),
    status            text        NOT NULL,
    risk_level        text        NOT NULL,
    urgency           text,
    escalation_level  integer     NOT NULL,
    created_at        timestamptz NOT NULL,
    changed_at        timestamptz NOT NULL
);
CREATE INDEX alerts_screening ON intake.alerts (screening_id);

-- One Stanley-Brown safety plan per flagged screening.
CREATE TABLE intake.safety_plans (
    id              uuid PRIMARY KEY,
    screening_id    uuid        NOT NULL UNIQUE REFERENCES intake.screenings (id),
    status          text        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'complete')),
    risk_level      text        NOT NULL,
    version         integer     NOT NULL DEFAULT 1,
    steps           jsonb       NOT NULL,
    emergency_task  jsonb,
    due_at          timestamptz NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
