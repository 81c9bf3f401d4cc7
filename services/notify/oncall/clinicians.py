"""Clinicians and their contact methods (addresses sealed: PHI). Functions here flush; the caller
commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.oncall.models import (
    Clinician,
    ContactMethod,
)
from services.notify.oncall.schemas import (
    ClinicianIn,
    ClinicianOut,
    ContactMethodIn,
    ContactMethodOut,
)
from shared.errors import NotFound, Unprocessable
from shared.events import utcnow
from shared.pagination import keyset_page


async def _methods(
    session: AsyncSession, clinician_ids: Sequence[uuid.UUID]
) -> list[ContactMethod]:
    return list(
        await session.scalars(
            select(ContactMethod)
            .where(
                ContactMethod.clinician_id.in_(clinician_ids), ContactMethod.deleted_at.is_(None)
            )
            .order_by(ContactMethod.position, ContactMethod.created_at)
        )
    )


def _clinician_out(clinician: Clinician, methods: Iterable[ContactMethod]) -> ClinicianOut:
    return ClinicianOut(
        id=clinician.id,
        name=clinician.name,
        created_at=clinician.created_at,
        languages=list(clinician.languages or ()),
        contact_methods=[
            ContactMethodOut.model_validate(m) for m in methods if m.clinician_id == clinician.id
        ],
    )


def _new_method(clinician_id: uuid.UUID, data: ContactMethodIn, position: int) -> ContactMethod:
    return ContactMethod(
        id=uuid.uuid4(),
        clinician_id=clinician_id,
        kind=data.kind,
        address=data.address,
        position=data.position if data.position is not None else position,
        delay_seconds=data.delay_seconds,
        created_at=utcnow(),
    )


async def create_clinician(session: AsyncSession, *, data: ClinicianIn) -> ClinicianOut:
    clinician = Clinician(
        id=uuid.uuid4(), name=data.name, created_at=utcnow(), languages=data.languages
    )
    session.add(clinician)
    await session.flush()
    methods = [_new_method(clinician.id, m, i) for i, m in enumerate(data.contact_methods)]
    session.add_all(methods)
    await session.flush()
    return _clinician_out(clinician, methods)


async def get_clinician(session: AsyncSession, *, clinician_id: uuid.UUID) -> ClinicianOut:
    clinician = await session.get(Clinician, clinician_id)
    if clinician is None:
        raise NotFound(f"no clinician {clinician_id}")
    return _clinician_out(clinician, await _methods(session, [clinician.id]))


async def list_clinicians(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> tuple[list[ClinicianOut], str | None]:
    clinicians, following = await keyset_page(
        session, select(Clinician), Clinician, limit=limit, cursor=cursor
    )
    methods = await _methods(session, [c.id for c in clinicians])
    return [_clinician_out(c, methods) for c in clinicians], following


async def set_languages(
    session: AsyncSession, *, clinician_id: uuid.UUID, languages: list[str]
) -> ClinicianOut:
    """Replace the languages the clinician speaks; from the next page on they count."""
    clinician = await session.get(Clinician, clinician_id, with_for_update=True)
    if clinician is None:
        raise NotFound(f"no clinician {clinician_id}")
    clinician.languages = list(languages)
    await session.flush()
    return _clinician_out(clinician, await _methods(session, [clinician.id]))


async def add_contact_method(
    session: AsyncSession, *, clinician_id: uuid.UUID, data: ContactMethodIn
) -> ContactMethodOut:
    if await session.get(Clinician, clinician_id) is None:
        raise NotFound(f"no clinician {clinician_id}")
    existing = await _methods(session, [clinician_id])
    position = max((m.position for m in existing), default=-1) + 1
    method = _new_method(clinician_id, data, position)
    session.add(method)
    await session.flush()
    return ContactMethodOut.model_validate(method)


async def remove_contact_method(
    session: AsyncSession, *, clinician_id: uuid.UUID, method_id: uuid.UUID
) -> None:
    """Stops future pages to the method; the row stays for the deliveries that name it."""
    method = await session.get(ContactMethod, method_id)
    if method is None or method.clinician_id != clinician_id or method.deleted_at is not None:
        raise NotFound(f"no contact method {method_id}")
    method.deleted_at = utcnow()
    await session.flush()


async def require_clinicians(
    session: AsyncSession, ids: Iterable[uuid.UUID], *, field: str
) -> None:
    wanted = set(ids)
    if not wanted:
        return
    found = set(await session.scalars(select(Clinician.id).where(Clinician.id.in_(wanted))))
    if wanted - found:
        raise Unprocessable(
            "unknown clinician", problems=[{"field": field, "problem": "unknown clinician id"}]
        )
