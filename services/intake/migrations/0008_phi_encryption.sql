-- contact and notes are stored encrypted by the application (shared/phi.py): a token in text.
-- Rows written before stay readable as they are until `triage phi rotate` encrypts them.
ALTER TABLE intake.screenings ALTER COLUMN contact TYPE text USING contact::text;
