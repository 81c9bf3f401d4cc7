"""The statements every screening takes, straight to asyncpg (`shared.db.driver`).

The insert is built from the table's own columns, its parameters named by column
(`screening_params`): no list of positions to keep in step by hand.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON

from services.intake.db import Base, outbox
from services.intake.screenings.models import Screening
from shared.db import qualified
from shared.outbox import add_event_after

#: What the insert sets, in the order of its parameters: every column of the screening but its
#: assessment (`risk`, recorded when it comes: cases/service.py).
_TABLE = Base.metadata.tables[f"{Base.metadata.schema}.{Screening.__tablename__}"]
INSERTED = tuple(column for column in _TABLE.columns if column.name != "risk")
_AS_JSON = tuple(isinstance(column.type, JSON) for column in INSERTED)


def screening_params(screening: Screening) -> tuple[Any, ...]:
    """The insert's parameters: each of `INSERTED` read from `screening` by its name."""
    return tuple(
        json.dumps(value) if as_json else value
        for column, as_json in zip(INSERTED, _AS_JSON, strict=True)
        for value in (getattr(screening, column.key),)
    )


#: The screening and its event in one statement, so a screening without an Idempotency-Key
#: costs one round trip, atomic without a BEGIN and a COMMIT around it. A repeat of a message
#: (same source and external_id in the submitter's replay scope, `scope.replay_scope`) inserts
#: neither and returns no row: DO NOTHING waits for a concurrent insert of the same message to
#: commit, so the look-up after it finds that row.
SCREENING_CTE = f"""
    WITH screening AS (
        INSERT INTO {qualified(_TABLE)} ({", ".join(c.name for c in INSERTED)})
        VALUES ({", ".join(f"${n}" for n in range(1, len(INSERTED) + 1))})
        ON CONFLICT (replay_scope, source, external_id) WHERE external_id IS NOT NULL DO NOTHING
        RETURNING id
    )
"""
#: The event's outbox row (`shared.outbox.event_row`) takes the parameters after the screening's.
_EVENT_PARAMS = len(INSERTED) + 1
INSERT_SCREENING = SCREENING_CTE + add_event_after(outbox, "screening", first_param=_EVENT_PARAMS)
#: The same with the request's audit entry queued in the same statement.
INSERT_SCREENING_AUDITED = SCREENING_CTE + add_event_after(
    outbox, "screening", first_param=_EVENT_PARAMS, events=2
)
FIND_KEY = "SELECT request_hash, screening_id FROM intake.idempotency_keys WHERE key = $1"
INSERT_KEY = """
    INSERT INTO intake.idempotency_keys (key, request_hash, screening_id, created_at)
    VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING RETURNING key
"""
