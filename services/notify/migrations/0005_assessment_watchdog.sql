-- The assessment watchdog (services/notify/watchdog/service.py): every submitted screening is
-- awaited until its assessment is seen; one not assessed ASSESSMENT_DEADLINE_SECONDS after submission
-- (dead-lettered by a rule-set bug, a version mismatch in a rolling deploy, risk down) opens an
-- alert "assessment delayed, review by hand", paged like any other. Either event may come
-- first (two topics): each fills its own column.
CREATE TABLE notify.awaited_assessments (
    screening_id   uuid PRIMARY KEY,
    due_at         timestamptz,
    assessed_at    timestamptz,
    alerted_at     timestamptz,
    correlation_id text,
    seen_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX awaited_assessments_due ON notify.awaited_assessments (due_at)
    WHERE assessed_at IS NULL AND alerted_at IS NULL;
CREATE INDEX awaited_assessments_seen ON notify.awaited_assessments (seen_at);

-- Such an alert has no assessment behind it.
ALTER TABLE notify.alerts ALTER COLUMN assessment_id DROP NOT NULL;
