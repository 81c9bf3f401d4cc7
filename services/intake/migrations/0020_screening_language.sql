-- The person's language (BCP 47) and country (ISO 3166-1 alpha-2) and region (ISO 3166-2) on
-- each screening: which crisis lines their plan prints, in which language, and who is paged
-- beside the on-call clinician. Screenings from before are English, in the deployment's
-- default country (NULL: resolved from DEFAULT_COUNTRY when read).
ALTER TABLE intake.screenings
    ADD COLUMN language text NOT NULL DEFAULT 'en'
        CHECK (language ~ '^[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$'),
    ADD COLUMN country text CHECK (country ~ '^[A-Z]{2}$'),
    ADD COLUMN region text
        CHECK (region ~ '^[A-Z]{2}-[A-Z0-9]{1,3}$' AND left(region, 2) = country);
