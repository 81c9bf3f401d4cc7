-- The overdue watchers (every intake replica) sleep until the earliest due time of an open plan
-- or follow-up, hours away. Every flagged screening opens a plan and a follow-up due later than
-- that, and each woke both watchers for a pass (two transactions each) that found nothing due.
-- The notice of an insert now says when the earliest of its rows is due, in seconds since the
-- epoch, and a watcher asleep until no later than that is not woken (shared/wakeup.py). A
-- change of status or due time still wakes them with no payload, as before.
CREATE FUNCTION intake.safety_plans_opened_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_safety_plans',
                      coalesce((SELECT extract(epoch FROM min(due_at))::text FROM opened), ''));
    RETURN NULL;
END $$;
DROP TRIGGER safety_plans_notify ON intake.safety_plans;
CREATE TRIGGER safety_plans_notify AFTER UPDATE OF due_at, status ON intake.safety_plans
    FOR EACH STATEMENT EXECUTE FUNCTION intake.safety_plans_notify();
CREATE TRIGGER safety_plans_opened_notify AFTER INSERT ON intake.safety_plans
    REFERENCING NEW TABLE AS opened
    FOR EACH STATEMENT EXECUTE FUNCTION intake.safety_plans_opened_notify();

CREATE FUNCTION intake.follow_ups_opened_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_follow_ups',
                      coalesce((SELECT extract(epoch FROM min(due_at))::text FROM opened), ''));
    RETURN NULL;
END $$;
DROP TRIGGER follow_ups_notify ON intake.follow_ups;
CREATE TRIGGER follow_ups_notify AFTER UPDATE OF due_at, status ON intake.follow_ups
    FOR EACH STATEMENT EXECUTE FUNCTION intake.follow_ups_notify();
CREATE TRIGGER follow_ups_opened_notify AFTER INSERT ON intake.follow_ups
    REFERENCING NEW TABLE AS opened
    FOR EACH STATEMENT EXECUTE FUNCTION intake.follow_ups_opened_notify();
