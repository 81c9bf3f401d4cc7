-- The safety plan's PHI is stored encrypted by the application (shared/phi.py): the steps (the
-- person's entries and reasons), the emergency task (its outcome), the review note, and each
-- revision's diff and snapshot hold a token of their JSON in text. Rows written before stay
-- readable as they are (JSON text) until `triage phi rotate` encrypts them.
ALTER TABLE intake.safety_plans
    ALTER COLUMN steps TYPE text USING steps::text,
    ALTER COLUMN emergency_task TYPE text USING emergency_task::text;
ALTER TABLE intake.safety_plan_revisions
    ALTER COLUMN diff TYPE text USING diff::text,
    ALTER COLUMN snapshot TYPE text USING snapshot::text;

-- Revisions stay append-only, with one exception: `triage phi rotate` re-encrypts diff and
-- snapshot (the same content under the current key). It says so for its own transaction
-- (SET LOCAL triage.phi_rotation = 'on'), and may change nothing else of the row.
CREATE OR REPLACE FUNCTION intake.safety_plan_revisions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND current_setting('triage.phi_rotation', true) = 'on'
       AND (NEW.plan_id, NEW.version, NEW.actor, NEW.role, NEW.action, NEW.at)
           IS NOT DISTINCT FROM (OLD.plan_id, OLD.version, OLD.actor, OLD.role, OLD.action, OLD.at)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'safety plan revisions are append-only';
END $$;
