-- Supervisors may change and review safety plans (shared/auth/roles.py); their revisions were
-- refused by the role CHECK, which predates the role (every supervisor edit answered 500).
ALTER TABLE intake.safety_plan_revisions
    DROP CONSTRAINT safety_plan_revisions_role_check,
    ADD CONSTRAINT safety_plan_revisions_role_check
        CHECK (role IN ('system', 'hotline', 'clinician', 'supervisor', 'admin'));
