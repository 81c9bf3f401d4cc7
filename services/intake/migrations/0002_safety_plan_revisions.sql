-- The safety plan as a workflow: who reviewed and completed it, the overdue marker, and its
-- revisions. Entries are the person's own words (PHI): they live here and nowhere else.
ALTER TABLE intake.safety_plans
    ADD COLUMN reviewed_by          text,
    ADD COLUMN reviewed_at          timestamptz,
    ADD COLUMN review_note          text,
    ADD COLUMN completed_by         text,
    ADD COLUMN completed_at         timestamptz,
    -- Set, once, by the transaction that queues the plan's safety_plan.overdue event.
    ADD COLUMN overdue_notified_at  timestamptz,
    ADD COLUMN correlation_id       text;

-- What the overdue watcher claims: open plans whose overdue event has not been queued yet.
CREATE INDEX safety_plans_overdue_due ON intake.safety_plans (due_at)
    WHERE status = 'open' AND overdue_notified_at IS NULL;

-- Every change to a plan is a new revision: who, when, what (diff) and the whole plan after it
-- (snapshot). Revisions are appended, never updated or deleted.
CREATE TABLE intake.safety_plan_revisions (
    plan_id   uuid        NOT NULL REFERENCES intake.safety_plans (id),
    version   integer     NOT NULL,
    actor     text        NOT NULL,
    role      text        NOT NULL CHECK (role IN ('system', 'hotline', 'clinician', 'admin')),
    action    text        NOT NULL,
    diff      jsonb       NOT NULL,
    snapshot  jsonb       NOT NULL,
    at        timestamptz NOT NULL,
    PRIMARY KEY (plan_id, version)
);

CREATE FUNCTION intake.safety_plan_revisions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'safety plan revisions are append-only';
END $$;
CREATE TRIGGER safety_plan_revisions_append_only BEFORE UPDATE OR DELETE
    ON intake.safety_plan_revisions
    FOR EACH ROW EXECUTE FUNCTION intake.safety_plan_revisions_append_only();

-- Plans opened before this migration get their first revision, as opened (the same snapshot shape
-- as services/intake/safety_plans/service.py writes).
INSERT INTO intake.safety_plan_revisions (plan_id, version, actor, role, action, diff, snapshot, at)
SELECT id, version, 'system', 'system', 'opened', '{}'::jsonb,
       jsonb_build_object(
           'id', id, 'screening_id', screening_id, 'status', status, 'risk_level', risk_level,
           'version', version, 'due_at', due_at, 'emergency_task', emergency_task,
           'steps', jsonb_build_array(
                   jsonb_build_object('key', 'warning_signs') || (steps -> 'warning_signs'),
                   jsonb_build_object('key', 'internal_coping') || (steps -> 'internal_coping'),
                   jsonb_build_object('key', 'social_distraction') || (steps -> 'social_distraction'),
                   jsonb_build_object('key', 'help_contacts') || (steps -> 'help_contacts'),
                   jsonb_build_object('key', 'professional_contacts') || (steps -> 'professional_contacts'),
                   jsonb_build_object('key', 'environment_safety') || (steps -> 'environment_safety'),
                   jsonb_build_object('key', 'reason_for_living') || (steps -> 'reason_for_living')),
           'reviewed_by', NULL, 'reviewed_at', NULL, 'review_note', NULL,
           'completed_by', NULL, 'completed_at', NULL,
           'created_at', created_at, 'updated_at', updated_at),
       created_at
  FROM intake.safety_plans;

-- Wakes the overdue watcher (every intake replica) when a plan is opened, completed or its due
-- time changes, so it sleeps until the earliest due time instead of polling.
CREATE FUNCTION intake.safety_plans_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_safety_plans', '');
    RETURN NULL;
END $$;
CREATE TRIGGER safety_plans_notify AFTER INSERT OR UPDATE OF due_at, status ON intake.safety_plans
    FOR EACH STATEMENT EXECUTE FUNCTION intake.safety_plans_notify();
