-- The lists (GET /v1/screenings, GET /v1/safety-plans), newest first within the caller's scope.
-- A page of screenings is one index range read in order and stopped at the page's end, however
-- many there are. The scope indexes gain the list's order and replace the plain ones (an
-- equality on their first column still uses them): each screening costs one index entry more
-- than before, not three. A hotline key's plans are found through its own screenings (as many
-- as it submitted, then sorted); everyone else's from the plans' own newest-first index.

-- Clinicians, supervisors and admins: every screening, newest first.
CREATE INDEX screenings_received_id ON intake.screenings (received_at, id);

-- Hotline staff: the screenings they submitted.
CREATE INDEX screenings_submitted_by_received ON intake.screenings (submitted_by, received_at, id)
    WHERE submitted_by IS NOT NULL;
DROP INDEX intake.screenings_submitted_by;

-- An EHR: what is filed under its identifier system (with several, the planner may read the
-- newest-first index above and skip the others' rows instead).
CREATE INDEX screenings_filed_under_received ON intake.screenings (filed_under, received_at, id)
    WHERE filed_under IS NOT NULL;
DROP INDEX intake.screenings_filed_under;

-- Plans, newest first (the overdue list, soonest due first, reads safety_plans_open_due).
CREATE INDEX safety_plans_created_id ON intake.safety_plans (created_at, id);

-- The screening list's filters read two fields of the assessment: statistics on them tell the
-- planner how common each level is (by default it guesses 0.5%, and sorts every match instead
-- of reading the newest-first index until the page is full). Gathered by ANALYZE.
CREATE STATISTICS intake.screenings_risk
    ON (risk ->> 'level'), ((risk ->> 'flagged')::boolean) FROM intake.screenings;
