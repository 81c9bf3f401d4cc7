-- Replies from people enrolled in Caring Contacts (POST /v1/twilio/sms): never lost, never
-- routine by default. The body is PHI, stored encrypted by the application. Each reply makes a
-- task for the team; one with risk words, or one the check could not classify, also opens an
-- alert for the on-call clinician (through notify, by ids and reason codes only).
CREATE TABLE intake.caring_replies (
    id uuid PRIMARY KEY,
    -- The enrolment it answers; NULL when no enrolment has that number (kept all the same).
    contact_id uuid REFERENCES intake.caring_contacts (id),
    follow_up_id uuid REFERENCES intake.follow_ups (id),
    provider_sid text NOT NULL UNIQUE,
    body text NOT NULL,
    -- routine, stop (an opt-out word), risk (risk words) or unclassified (the check failed).
    classification text NOT NULL CHECK (classification IN ('routine', 'stop', 'risk',
                                                           'unclassified')),
    reasons text[] NOT NULL DEFAULT '{}',
    words_version text NOT NULL,
    received_at timestamptz NOT NULL
);
CREATE INDEX caring_replies_follow_up ON intake.caring_replies (follow_up_id, received_at);
