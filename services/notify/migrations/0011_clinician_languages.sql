-- The languages a clinician speaks (BCP 47 tags, checked with Babel by the API): a person's
-- language is matched on its primary subtag (services/notify/oncall/languages.py). Empty: not
-- stated, taken as the default language (English).
ALTER TABLE notify.clinicians
    ADD COLUMN languages text[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(languages) <= 20);
