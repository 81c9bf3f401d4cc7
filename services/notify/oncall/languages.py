"""Who on call speaks the person's language: the second look-up of a language-aware page.

A person's language comes with the assessment (`risk.assessed`'s `language`, BCP 47; a missing
one is English). A clinician speaks it when one of their `languages` has the same primary
subtag (`es-MX` is understood by `es`); a clinician who states no language is taken to speak
English, the default, so a deployment that never sets languages pages as it always did.

"On call" is what a supervisor reading the roster means: whoever covers any schedule now
(rotation or override), and the clinicians a policy level names. A clinician who is off duty is
never paged for their language: a language match is someone working now. When nobody on call
speaks the person's language the alert says `interpreter_needed`, and the case view shows it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.oncall.models import Clinician, Schedule
from services.notify.oncall.schedules import schedule_on_call
from shared.locales import DEFAULT_LANGUAGE, primary, speaks

#: The risk levels for which a level with `prefer_language` pages a speaker in parallel.
PARALLEL_LEVELS = frozenset({"high", "imminent"})


def is_default(language: str | None) -> bool:
    return primary(language) == DEFAULT_LANGUAGE


async def on_call_now(session: AsyncSession, *, at: datetime) -> list[uuid.UUID]:
    """Whoever covers any schedule at `at`, oldest schedule first, each once."""
    found: list[uuid.UUID] = []
    for schedule_id in await session.scalars(
        select(Schedule.id).order_by(Schedule.created_at, Schedule.id)
    ):
        who = await schedule_on_call(session, schedule_id=schedule_id, at=at)
        if who is not None:
            found.append(who.clinician)
    return list(dict.fromkeys(found))


async def speakers(
    session: AsyncSession, clinician_ids: Iterable[uuid.UUID], language: str | None
) -> list[uuid.UUID]:
    """Those of `clinician_ids` (in their order) who speak `language`."""
    wanted = list(dict.fromkeys(clinician_ids))
    if not wanted:
        return []
    rows = await session.execute(
        select(Clinician.id, Clinician.languages).where(Clinician.id.in_(wanted))
    )
    spoken = {row.id: list(row.languages or ()) or [DEFAULT_LANGUAGE] for row in rows}
    return [c for c in wanted if c in spoken and speaks(spoken[c], language)]


async def interpreter_needed(
    session: AsyncSession, *, language: str | None, at: datetime, named: Iterable[uuid.UUID] = ()
) -> bool:
    """Nobody on call at `at` (any schedule, or `named` by the alert's first level) speaks
    `language`. English (the default) needs no look-up: a clinician without languages speaks it."""
    if is_default(language):
        return False
    on_call = [*named, *await on_call_now(session, at=at)]
    return not await speakers(session, on_call, language)


async def speaker_to_add(
    session: AsyncSession, *, language: str | None, at: datetime, paged: set[uuid.UUID]
) -> uuid.UUID | None:
    """One clinician on call at `at` who speaks `language`, to page beside `paged`; None when
    one of `paged` speaks it already, or nobody on call does."""
    if await speakers(session, paged, language):
        return None
    others = [c for c in await on_call_now(session, at=at) if c not in paged]
    found = await speakers(session, others, language)
    return found[0] if found else None
