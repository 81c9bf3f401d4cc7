-- Rule-set versions as they were used (audit: every assessment names the version it used).
CREATE TABLE risk.rule_sets (
    version        text PRIMARY KEY,
    content        jsonb       NOT NULL,
    first_used_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE risk.assessments (
    id              uuid PRIMARY KEY,
    screening_id    uuid        NOT NULL,
    kind            text        NOT NULL DEFAULT 'automatic',   -- 'automatic' | 'clinician'
    instrument      text        NOT NULL,
    level           text        NOT NULL,
    flagged         boolean     NOT NULL,
    reasons         jsonb       NOT NULL,
    details         jsonb       NOT NULL DEFAULT '{}',
    rules_version   text        NOT NULL REFERENCES risk.rule_sets (version),
    assessed_at     timestamptz NOT NULL,
    assessed_by     text,
    correlation_id  text        NOT NULL
);
-- One automatic assessment per screening, however often the screening is redelivered.
CREATE UNIQUE INDEX assessments_one_automatic ON risk.assessments (screening_id) WHERE kind = 'automatic';
