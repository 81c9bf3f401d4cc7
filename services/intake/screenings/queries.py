"""The statements every screening takes, straight to asyncpg (`shared.db.driver`)."""

from __future__ import annotations

from services.intake.db import outbox
from shared.outbox import add_event_after

#: The screening and its event in one statement, so a screening without an Idempotency-Key
#: costs one round trip, atomic without a BEGIN and a COMMIT around it. A repeat of a message
#: (same source and external_id in the submitter's replay scope, `scope.replay_scope`) inserts
#: neither and returns no row: DO NOTHING waits for a concurrent insert of the same message to
#: commit, so the look-up after it finds that row.
SCREENING_CTE = """
    WITH screening AS (
        INSERT INTO intake.screenings (id, subject_id, source, external_id, instrument, answers,
                                       imminent_danger, contact, notes, request_hash, status,
                                       received_at, updated_at, submitted_by, filed_under,
                                       replay_scope)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'received', $11, $11, $12, $13, $14)
        ON CONFLICT (replay_scope, source, external_id) WHERE external_id IS NOT NULL DO NOTHING
        RETURNING id
    )
"""
INSERT_SCREENING = SCREENING_CTE + add_event_after(outbox, "screening", first_param=15)
#: The same with the request's audit entry queued in the same statement.
INSERT_SCREENING_AUDITED = SCREENING_CTE + add_event_after(
    outbox, "screening", first_param=15, events=2
)
FIND_KEY = "SELECT request_hash, screening_id FROM intake.idempotency_keys WHERE key = $1"
INSERT_KEY = """
    INSERT INTO intake.idempotency_keys (key, request_hash, screening_id, created_at)
    VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING RETURNING key
"""
