"""A reply from a person enrolled in Caring Contacts is never lost, and never routine by default.

Each reply is stored (the body encrypted) and matched to the enrolment its number belongs to. A
STOP word ends the enrolment at once (every pending message cancelled). Every reply of an
enrolment makes a task for the team. A reply with risk words, or one the check could not
classify (it raised), also publishes `follow_up.reply_risk` with ids and reason codes only: notify
opens one alert for it (keyed by the reply) and pages the on-call clinician as for a screening
at `high`.

Finding the enrolment: the address is encrypted with a random nonce, so the sms enrolments of
the last `MATCH_DAYS` are read and decrypted, newest first, until one has the number. That is a
few thousand AES-GCM decryptions at most for a hotline's year of enrolments.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.db import sealed
from services.intake.follow_ups import caring, reply_check
from services.intake.follow_ups.models import CaringContact, CaringReply, FollowUp
from services.intake.follow_ups.service import add_task, publish
from shared.events import utcnow
from shared.phi import ring_of

log = logging.getLogger(__name__)

MATCH_DAYS = 400
(_BODY,) = sealed("caring_replies")
Check = Callable[[str], reply_check.Verdict]


async def enrolment_of(session: AsyncSession, number: str) -> CaringContact | None:
    """The newest sms enrolment of `number` (active first), recorded in the last MATCH_DAYS."""
    since = utcnow() - timedelta(days=MATCH_DAYS)
    contacts = await session.stream_scalars(
        select(CaringContact)
        .where(CaringContact.channel == "sms", CaringContact.recorded_at >= since)
        .order_by((CaringContact.status == "active").desc(), CaringContact.recorded_at.desc())
    )
    async for contact in contacts:
        if contact.address == number:
            return contact
    return None


async def receive(
    session: AsyncSession,
    *,
    provider_sid: str,
    number: str,
    body: str,
    check: Check = reply_check.classify,
) -> CaringReply | None:
    """Store and act on one reply; None when it was received already (the provider retried)."""
    now = utcnow()
    try:
        verdict = check(body)
    except Exception as exc:  # never routine by default
        log.error("reply %s could not be classified: %s", provider_sid, type(exc).__name__)
        verdict = reply_check.Verdict("unclassified", ("check_failed",))
    contact = await enrolment_of(session, number)
    reply_id = uuid.uuid4()
    inserted = await session.scalar(
        insert(CaringReply)
        .values(
            id=reply_id,
            contact_id=contact.id if contact else None,
            follow_up_id=contact.follow_up_id if contact else None,
            provider_sid=provider_sid,
            body=_BODY.seal(ring_of(session), {"id": reply_id}, body),
            classification=verdict.classification,
            reasons=list(verdict.reasons),
            words_version=reply_check.VERSION,
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=[CaringReply.provider_sid])
        .returning(CaringReply.id)
    )
    if inserted is None:
        return None
    reply = await session.get(CaringReply, reply_id)
    assert reply is not None
    if contact is None:
        log.warning("reply %s matches no Caring Contacts enrolment; kept", reply_id)
        return reply
    if verdict.classification == "stop" and contact.status == "active":
        cancelled = await caring.end(
            session, contact, reason=caring.STOP_WORD, by="person", now=now
        )
        log.info("caring enrolment %s ended by a stop word (%d cancelled)", contact.id, cancelled)
    follow_up = await session.get(FollowUp, contact.follow_up_id)
    assert follow_up is not None
    await add_task(session, follow_up, kind="reply", for_role="team", reply_id=reply_id)
    if verdict.classification in ("risk", "unclassified"):
        await publish(
            session,
            follow_up,
            "follow_up.reply_risk",
            notice_id=reply_id,
            audience="team",
            reasons=[f"caring_reply:{r}" for r in verdict.reasons],
            at=now,
        )
    await session.flush()
    return reply


async def replies_of(session: AsyncSession, follow_up_id: uuid.UUID) -> list[CaringReply]:
    """The follow-up's replies, oldest first (decrypted: the caller's read is audited)."""
    return list(
        await session.scalars(
            select(CaringReply)
            .where(CaringReply.follow_up_id == follow_up_id)
            .order_by(CaringReply.received_at)
        )
    )
