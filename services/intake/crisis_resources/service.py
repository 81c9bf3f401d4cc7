"""Crisis lines and emergency numbers per country and region, and the ones to show a person.

Reference data kept by admins (seeded by migrations/0019), never a person's record. Each row is
one way (phone, sms, chat, url) to reach one service; `kind` tells a crisis line from an
emergency number so a printed plan can show them apart. A row not checked against its source
for more than `STALE_AFTER` (or never) is `stale`, computed at read time from `verified_at`.
Functions here only flush: the route owns the transaction (and the gate audits the write).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.crisis_resources import codes
from services.intake.crisis_resources.models import CrisisResource
from services.intake.crisis_resources.schemas import CrisisResourceIn, CrisisResourceOut
from shared.errors import NotFound
from shared.events import utcnow

#: How long a checked contact is trusted: after this it is flagged for an admin to check again.
STALE_AFTER = timedelta(days=180)
#: The order of a service's ways in, on a printed plan: the voice first.
_CHANNELS = {"phone": 0, "sms": 1, "chat": 2, "url": 3}


def is_stale(verified_at: date | None, today: date) -> bool:
    """Never checked, or checked more than 180 days before `today`."""
    return verified_at is None or today - verified_at > STALE_AFTER


def out(row: CrisisResource, today: date | None = None) -> CrisisResourceOut:
    return CrisisResourceOut(
        id=row.id,
        country=row.country,
        region=row.region,
        languages=list(row.languages),
        name=row.name,
        kind=row.kind,
        channel=row.channel,
        contact=row.contact,
        keyword=row.keyword,
        note=row.note,
        hours=row.hours,
        open_24_7=row.open_24_7,
        source=row.source,
        verified_at=row.verified_at,
        stale=is_stale(row.verified_at, today or utcnow().date()),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _speaks(language: str) -> ColumnElement[bool]:
    """Rows answering in `language`'s primary language (`es` matches `es`, `es-MX`, `es-419`)."""
    tag = func.unnest(CrisisResource.languages).table_valued("tag").render_derived()
    primary = func.split_part(func.lower(tag.c.tag), "-", 1)
    return exists(select(1).select_from(tag).where(primary == codes.primary(language)))


def listed(
    *, country: str | None = None, language: str | None = None, kind: str | None = None
) -> Select[CrisisResource]:
    """The resources matching the filters (each already validated)."""
    query = select(CrisisResource)
    if country is not None:
        query = query.where(CrisisResource.country == country)
    if language is not None:
        query = query.where(_speaks(language))
    if kind is not None:
        query = query.where(CrisisResource.kind == kind)
    return query


async def get(
    session: AsyncSession, resource_id: uuid.UUID, *, lock: bool = False
) -> CrisisResource:
    row = await session.get(CrisisResource, resource_id, with_for_update=lock)
    if row is None:
        raise NotFound(f"no crisis resource {resource_id}")
    return row


def _fill(row: CrisisResource, data: CrisisResourceIn) -> None:
    for name in CrisisResourceIn.model_fields:
        setattr(row, name, getattr(data, name))


async def create(session: AsyncSession, data: CrisisResourceIn, *, actor: str) -> CrisisResource:
    now = utcnow()
    row = CrisisResource(id=uuid.uuid4(), created_at=now, updated_at=now, updated_by=actor)
    _fill(row, data)
    session.add(row)
    await session.flush()
    return row


async def replace(
    session: AsyncSession, resource_id: uuid.UUID, data: CrisisResourceIn, *, actor: str
) -> CrisisResource:
    """The whole resource replaced; a seeded row so changed is never touched by a later seed."""
    row = await get(session, resource_id, lock=True)
    _fill(row, data)
    row.updated_at, row.updated_by = utcnow(), actor
    await session.flush()
    return row


async def delete(session: AsyncSession, resource_id: uuid.UUID) -> None:
    row = await get(session, resource_id, lock=True)
    await session.delete(row)
    await session.flush()


@dataclass(frozen=True)
class ForPerson:
    """What to show one person, each list in the order to show it."""

    crisis_lines: list[CrisisResource] = field(default_factory=list)
    emergency: list[CrisisResource] = field(default_factory=list)

    @property
    def all(self) -> list[CrisisResource]:
        return [*self.crisis_lines, *self.emergency]


async def resources_for(
    session: AsyncSession,
    country: str,
    region: str | None = None,
    language: str | None = None,
) -> ForPerson:
    """The crisis lines and emergency numbers of `country` to show a person there: those of
    their `region` (ISO 3166-2) first, then the country-wide ones; within each, those answering
    in the person's `language` (BCP 47, matched on its primary subtag) first, then the others
    (an emergency number is shown whatever language it answers in); a service's phone before
    its text, chat and page.

    A person whose country is not known is shown DEFAULT_COUNTRY's (intake's settings): pass
    it as `country`. A country without resources gives empty lists, never another country's
    numbers. Raises ValueError for a code that is not ISO 3166-1 / 3166-2 / BCP 47.
    """
    country = codes.country(country)
    region = codes.subdivision(region, country) if region else None
    wanted = codes.primary(codes.language(language)) if language else None
    query = select(CrisisResource).where(CrisisResource.country == country)
    if region is None:
        query = query.where(CrisisResource.region.is_(None))
    else:
        query = query.where((CrisisResource.region.is_(None)) | (CrisisResource.region == region))
    rows = list(await session.scalars(query))

    def order(row: CrisisResource) -> tuple[int, int, str, int, str]:
        speaks = wanted is None or any(codes.primary(t) == wanted for t in row.languages)
        return (
            0 if row.region is not None else 1,
            0 if speaks else 1,
            row.name,
            _CHANNELS.get(row.channel, 9),
            row.contact,
        )

    rows.sort(key=order)
    return ForPerson(
        crisis_lines=[r for r in rows if r.kind == "crisis_line"],
        emergency=[r for r in rows if r.kind == "emergency"],
    )
