"""Caring Contacts: the person's consent enrols them in a schedule of short, warm messages; an
opt-out, from them or from staff, ends it absolutely.

Consent records who took it and when, the channel (`sms` or `email`), the person's number (E.164,
parsed with `phonenumbers` in DEFAULT_COUNTRY when it has no country code) or email address (PHI,
encrypted), their IANA time zone and language. Every message is a row, scheduled at consent
(schedule.py) and sent by the sender (sender.py). Ending the enrolment (`end`) cancels every
pending message in the same statement, and the sender's claim only takes messages of an active
enrolment: nothing is sent after an opt-out, even one that lands while a send is being claimed.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

import phonenumbers
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.follow_ups import texts
from services.intake.follow_ups.models import CaringContact, CaringMessage
from services.intake.follow_ups.schedule import Window, parse_schedule, send_times
from services.intake.follow_ups.service import Actor, get_follow_up
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events import utcnow

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{2,63}$")

#: How an enrolment ended (the column's CHECK).
WITHDRAWN, STOP_WORD, PROVIDER_OPT_OUT = "withdrawn", "stop_word", "provider_opt_out"


class AlreadyEnrolled(Conflict):
    code = "already_enrolled"


@dataclass(frozen=True)
class Plan:
    """How messages are scheduled (settings CARING_*)."""

    schedule: str
    window: Window

    @classmethod
    def of(cls, settings: Any) -> Plan:
        start: time = settings.caring_window_start
        end: time = settings.caring_window_end
        return cls(settings.caring_schedule, Window(start, end))


def e164(raw: str, default_country: str) -> str:
    """The number in E.164, or 422 naming the field (never the number)."""
    try:
        number = phonenumbers.parse(raw, default_country)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise Unprocessable(
            "phone is not a valid phone number (give it with its country code, e.g. +34 …)",
            problems=[{"field": "phone", "problem": "not a valid phone number"}],
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email_address(raw: str) -> str:
    if not _EMAIL.fullmatch(raw):
        raise Unprocessable(
            "email is not an email address",
            problems=[{"field": "email", "problem": "not an email address"}],
        )
    return raw


async def enrol(
    session: AsyncSession,
    *,
    follow_up_id: uuid.UUID,
    visible: ColumnElement[bool],
    channel: str,
    address: str,
    time_zone: str,
    language: str,
    actor: Actor,
    plan: Plan,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> CaringContact:
    """Record consent and schedule every message (one enrolment active per follow-up)."""
    follow_up = await get_follow_up(
        session, follow_up_id=follow_up_id, visible=visible, for_update=True
    )
    if await active(session, follow_up.id) is not None:
        raise AlreadyEnrolled("this person is enrolled already; withdraw first to change it")
    at = now or utcnow()
    contact = CaringContact(
        id=uuid.uuid4(),
        follow_up_id=follow_up.id,
        status="active",
        channel=channel,
        address=address,
        time_zone=time_zone,
        language=language,
        schedule=plan.schedule,
        texts_version=texts.VERSION,
        recorded_by=actor.name,
        recorded_role=actor.role,
        recorded_at=at,
    )
    session.add(contact)
    times = send_times(at, time_zone, parse_schedule(plan.schedule), window=plan.window, rng=rng)
    session.add_all(
        CaringMessage(
            id=uuid.uuid4(),
            contact_id=contact.id,
            sequence=n,
            status="pending",
            due_at=due,
            attempts=0,
            created_at=at,
        )
        for n, due in enumerate(times, start=1)
    )
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent consent for the same follow-up won
        raise AlreadyEnrolled("this person is enrolled already") from exc
    return contact


async def active(session: AsyncSession, follow_up_id: uuid.UUID) -> CaringContact | None:
    found: CaringContact | None = await session.scalar(
        select(CaringContact).where(
            CaringContact.follow_up_id == follow_up_id, CaringContact.status == "active"
        )
    )
    return found


async def end(
    session: AsyncSession, contact: CaringContact, *, reason: str, by: str, now: datetime
) -> int:
    """End the enrolment and cancel every pending message at once; returns how many."""
    contact.status = "withdrawn" if reason == WITHDRAWN else "opted_out"
    contact.ended_reason, contact.ended_by, contact.ended_at = reason, by, now
    await session.flush()
    result = await session.execute(
        update(CaringMessage)
        .where(CaringMessage.contact_id == contact.id, CaringMessage.status == "pending")
        .values(status="cancelled", finished_at=now, lease_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def withdraw(
    session: AsyncSession,
    *,
    follow_up_id: uuid.UUID,
    visible: ColumnElement[bool],
    actor: Actor,
) -> int:
    """Staff withdraw the person's consent: everything pending is cancelled."""
    follow_up = await get_follow_up(
        session, follow_up_id=follow_up_id, visible=visible, for_update=True
    )
    contact = await active(session, follow_up.id)
    if contact is None:
        raise NotFound("this person is not enrolled in Caring Contacts")
    return await end(session, contact, reason=WITHDRAWN, by=actor.name, now=utcnow())


async def enrolments_of(session: AsyncSession, follow_up_id: uuid.UUID) -> list[CaringContact]:
    return list(
        await session.scalars(
            select(CaringContact)
            .where(CaringContact.follow_up_id == follow_up_id)
            .order_by(CaringContact.recorded_at)
        )
    )


async def messages_of(session: AsyncSession, contact_id: uuid.UUID) -> list[CaringMessage]:
    return list(
        await session.scalars(
            select(CaringMessage)
            .where(CaringMessage.contact_id == contact_id)
            .order_by(CaringMessage.sequence)
        )
    )
