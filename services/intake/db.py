"""What intake's tables share (schema `intake`; DDL in migrations/): the declarative base and
its metadata, the outbox, the registry of sealed columns and the retention rules. Each domain
package keeps its own tables in its `models.py`."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from shared.db import TYPE_ANNOTATION_MAP
from shared.phi import Sealed, columns_of
from shared.retention import Rule
from shared.runtime import plumbing_tables
from shared.settings import ServiceSettings

SCHEMA = "intake"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)
    type_annotation_map = TYPE_ANNOTATION_MAP


outbox, processed_events = plumbing_tables(Base.metadata)


_REVISION = ("plan_id", "version")

#: Every column of intake stored encrypted (shared/phi.py): the case's contact and notes, the
#: plan's entries, reasons, emergency outcome and review note, its revisions, the secrets
#: that sign FHIR rest-hook pushes, the notes of follow-up attempts, and the addresses Caring
#: Contacts go to and the replies they get. `triage phi rotate` and the start-up check read
#: this list.
SEALED = (
    Sealed("intake.screenings", "contact"),
    Sealed("intake.screenings", "notes"),
    Sealed("intake.safety_plans", "steps", json=True),
    Sealed("intake.safety_plans", "emergency_task", json=True),
    Sealed("intake.safety_plans", "review_note"),
    Sealed("intake.safety_plan_revisions", "diff", key=_REVISION, json=True),
    Sealed("intake.safety_plan_revisions", "snapshot", key=_REVISION, json=True),
    Sealed("intake.fhir_subscriptions", "secret"),
    Sealed("intake.follow_up_attempts", "note", key=("follow_up_id", "number")),
    Sealed("intake.caring_contacts", "address"),
    Sealed("intake.caring_replies", "body"),
)


def sealed(table: str) -> tuple[Sealed, ...]:
    return columns_of(SEALED, f"{SCHEMA}.{table}")


def retention(settings: ServiceSettings) -> list[Rule]:
    """Intake's tables pruned (shared/retention.py); children before parents."""
    records = settings.records_days
    pushes_done = "status <> 'pending' AND finished_at < $1"
    return [
        Rule("intake.idempotency_keys", "key", "created_at < $1", settings.idempotency_keys_days),
        Rule(
            "intake.fhir_push_attempts",
            "id",
            f"push_id IN (SELECT id FROM intake.fhir_pushes WHERE {pushes_done})",
            records,
        ),
        Rule(
            "intake.fhir_pushes",
            "id",
            f"{pushes_done} AND NOT EXISTS (SELECT 1 FROM intake.fhir_push_attempts a"
            " WHERE a.push_id = intake.fhir_pushes.id)",
            records,
        ),
    ]
