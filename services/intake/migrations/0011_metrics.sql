-- What /metrics counts at each scrape (services/intake/metrics.py), each from a small index.

-- Open plans past their due time (the overdue watcher's index leaves out those it announced).
CREATE INDEX safety_plans_open_due ON intake.safety_plans (due_at) WHERE status = 'open';

-- FHIR pushes that failed for good (pending ones have fhir_pushes_due).
CREATE INDEX fhir_pushes_failed ON intake.fhir_pushes (finished_at) WHERE status = 'failed';

-- Screenings not assessed yet.
CREATE INDEX screenings_received ON intake.screenings (received_at) WHERE status = 'received';
