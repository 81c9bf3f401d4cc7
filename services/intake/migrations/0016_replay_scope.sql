-- An external_id is unique within its submitter's namespace (services/intake/screenings/scope.py
-- `replay_scope`), no longer across every caller: an EHR could post another EHR's identifier
-- first and bury the screening it names. An ehr credential's namespace is the identifier system
-- the screening is filed under; anyone else's is its own credential.
ALTER TABLE intake.screenings ADD COLUMN replay_scope text;

-- Screenings stored before: filed under a system (an EHR's, or a FHIR post's identifier) are
-- that system's; the others their submitter's. The old index made (source, external_id) unique
-- across everyone, so these are unique too.
UPDATE intake.screenings
   SET replay_scope = CASE WHEN filed_under IS NOT NULL THEN 'system:' || filed_under
                           ELSE 'credential:' || coalesce(submitted_by, '') END
 WHERE external_id IS NOT NULL;

CREATE UNIQUE INDEX screenings_replay ON intake.screenings (replay_scope, source, external_id)
    WHERE external_id IS NOT NULL;
DROP INDEX intake.screenings_source_external_id;
ALTER TABLE intake.screenings
    ADD CONSTRAINT screenings_replay_scope CHECK (external_id IS NULL OR replay_scope IS NOT NULL);
