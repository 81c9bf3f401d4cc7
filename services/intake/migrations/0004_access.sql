-- Access: API keys (a SHA-256 digest only), and who each screening and rest-hook belongs to.

CREATE TABLE intake.api_keys (
    id                  uuid PRIMARY KEY,
    name                text        NOT NULL,
    role                text        NOT NULL
                        CHECK (role IN ('hotline', 'ehr', 'clinician', 'supervisor', 'admin')),
    identifier_systems  text[]      NOT NULL DEFAULT '{}',
    key_hash            text        NOT NULL UNIQUE,
    created_at          timestamptz NOT NULL,
    expires_at          timestamptz,
    revoked_at          timestamptz,
    CHECK ((role = 'ehr') = (cardinality(identifier_systems) > 0))
);
CREATE INDEX api_keys_created ON intake.api_keys (created_at, id);

-- The credential that submitted a screening (an API key's id, or oidc:<subject>), and the
-- identifier system it is filed under (an EHR's); object scope is a WHERE on these.
ALTER TABLE intake.screenings ADD COLUMN submitted_by text, ADD COLUMN filed_under text;
CREATE INDEX screenings_submitted_by ON intake.screenings (submitted_by) WHERE submitted_by IS NOT NULL;
CREATE INDEX screenings_filed_under ON intake.screenings (filed_under) WHERE filed_under IS NOT NULL;

-- The credential that registered a rest-hook: an ehr credential sees and stops only its own.
ALTER TABLE intake.fhir_subscriptions ADD COLUMN owner text;
