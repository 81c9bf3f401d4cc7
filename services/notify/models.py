"""Notify's schema-wide pieces: the declarative Base every domain's tables share (schema
`notify`; DDL in migrations/), the outbox, the settings table, the sealed (encrypted) columns of
every domain and the retention rules.

The tables themselves live with their domain: alerts/models.py, delivery/models.py,
oncall/models.py, reminders/models.py.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import TYPE_ANNOTATION_MAP
from shared.phi import Sealed, columns_of, protect
from shared.retention import Rule
from shared.runtime import plumbing_tables
from shared.settings import ServiceSettings

SCHEMA = "notify"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)
    type_annotation_map = TYPE_ANNOTATION_MAP


outbox, processed_events = plumbing_tables(Base.metadata)


class Setting(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]


#: Every column of notify stored encrypted (shared/phi.py): clinicians' contact addresses, where
#: each page went, and the webhook signing secret this service generated (settings).
SEALED = (
    Sealed("notify.settings", "value", key=("key",)),
    Sealed("notify.contact_methods", "address"),
    Sealed("notify.deliveries", "target"),
    Sealed("notify.delivery_attempts", "target", key=("delivery_id", "attempt")),
)


def sealed(table: str) -> Sealed:
    """The one sealed column of `notify.<table>`."""
    (column,) = columns_of(SEALED, f"{SCHEMA}.{table}")
    return column


protect(Setting, sealed("settings"))


def retention(settings: ServiceSettings) -> list[Rule]:
    """Notify's tables pruned (shared/retention.py); children before parents. Alerts are kept."""
    records = settings.records_days
    done = "status <> 'pending' AND finished_at < $1"
    return [
        Rule(
            "notify.delivery_attempts",
            "id",
            f"delivery_id IN (SELECT id FROM notify.deliveries WHERE {done})",
            records,
        ),
        Rule(
            "notify.deliveries",
            "id",
            f"{done} AND NOT EXISTS (SELECT 1 FROM notify.delivery_attempts a"
            " WHERE a.delivery_id = notify.deliveries.id)",
            records,
        ),
        Rule("notify.reminders", "id", done, records),
        Rule(
            "notify.provider_callbacks",
            "ctid",
            "received_at < $1",
            settings.processed_events_days,
        ),
        Rule(
            "notify.awaited_assessments",
            "screening_id",
            "seen_at < $1 AND (assessed_at IS NOT NULL OR alerted_at IS NOT NULL)",
            settings.processed_events_days,
        ),
    ]
