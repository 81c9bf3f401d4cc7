-- Crisis lines and emergency numbers per country and region (services/intake/crisis_resources):
-- reference data kept by admins, shown on a person's printed safety plan. One row is one way
-- (phone, sms, chat, url) to reach one service. The API checks every code and URL; these
-- CHECKs keep what a hand-written INSERT could get wrong from reaching a printed plan.
CREATE TABLE intake.crisis_resources (
    id uuid PRIMARY KEY,
    -- The seed's name for a seeded row (0019); NULL for rows an admin added.
    seed_key text UNIQUE,
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    region text CHECK (region ~ '^[A-Z]{2}-[A-Z0-9]{1,3}$' AND left(region, 2) = country),
    languages text[] NOT NULL CHECK (cardinality(languages) BETWEEN 1 AND 10),
    name text NOT NULL CHECK (name <> ''),
    kind text NOT NULL CHECK (kind IN ('crisis_line', 'emergency')),
    channel text NOT NULL CHECK (channel IN ('phone', 'sms', 'chat', 'url')),
    contact text NOT NULL CHECK (
        CASE WHEN channel IN ('phone', 'sms') THEN contact ~ '^\+?[0-9]+([ -][0-9]+)*$'
             ELSE contact LIKE 'https://%' END
    ),
    keyword text CHECK (keyword IS NULL OR channel = 'sms'),
    note text,
    hours text,
    open_24_7 boolean NOT NULL,
    source text NOT NULL CHECK (source LIKE 'https://%'),
    -- The day the contact was last checked against its source; NULL: never (shown stale).
    verified_at date,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Who last changed the row through the API; NULL: as seeded (a later seed may update it).
    updated_by text
);

-- A person's country's resources (resources_for, GET ?country=).
CREATE INDEX crisis_resources_country ON intake.crisis_resources (country, region);
-- The list's order (keyset pages).
CREATE INDEX crisis_resources_created_id ON intake.crisis_resources (created_at, id);
