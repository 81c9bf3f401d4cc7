"""The Caring Contacts sender: due messages go out through Twilio's REST API (shared/twilio.py)
from the caring number (CARING_FROM_NUMBER, else TWILIO_FROM_NUMBER), with a status callback to
intake's POST /v1/twilio/status.

The message row is the durable timer, and the loop is the shared leased work queue
(shared/workqueue.py): claimed with a lease (`FOR UPDATE SKIP LOCKED`), woken by a NOTIFY when a
message is scheduled or cancelled, sleeping until the next due time otherwise.

Opt-out is absolute. The claim takes only messages of an active enrolment, and the send itself
runs in a transaction that first takes a share lock on the enrolment and re-reads it: an opt-out
(`caring.end`, which updates the enrolment) waits for a send already under way, and a send that
starts after it finds the enrolment ended and sends nothing. Twilio's 21610 (the person texted
STOP to the number) ends the enrolment as a STOP word does.

The body is one of the versioned texts (texts.py): the same for everyone, no PHI; the only PHI
given to the provider is the number it must send to.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

import httpx
from sqlalchemy import Integer, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.db import sealed
from services.intake.follow_ups import caring, texts
from services.intake.follow_ups.models import CaringContact, CaringMessage
from services.intake.settings import IntakeSettings
from shared.db import SessionFactory, transaction
from shared.events import utcnow
from shared.mail import send_mail
from shared.runtime import Runtime
from shared.twilio import OPTED_OUT, Sent, send_sms
from shared.wakeup import Listener
from shared.workqueue import Batch, WorkQueue, lease_free, retry_at

log = logging.getLogger(__name__)

CHANNEL = "intake_caring_messages"
LEASE = timedelta(seconds=30)
(_ADDRESS,) = sealed("caring_contacts")

_DUE = (
    select(CaringMessage.id)
    .join(CaringContact, CaringContact.id == CaringMessage.contact_id)
    .where(
        CaringMessage.status == "pending",
        CaringMessage.due_at <= func.now(),
        lease_free(CaringMessage),
        CaringContact.status == "active",
        CaringContact.channel.in_(bindparam("channels", expanding=True)),
    )
    .order_by(CaringMessage.due_at)
    .limit(bindparam("limit", type_=Integer))
    .with_for_update(of=CaringMessage, skip_locked=True)
    .scalar_subquery()
)
#: Leases up to `limit` due messages of active enrolments by `channels` (those configured), one
#: more attempt each.
CLAIM = (
    update(CaringMessage)
    .where(CaringMessage.id.in_(_DUE))
    .values(lease_until=func.now() + LEASE, attempts=CaringMessage.attempts + 1)
    .returning(CaringMessage.id, CaringMessage.contact_id, CaringMessage.attempts)
    .execution_options(synchronize_session=False)
)
NEXT_DUE = (
    select(func.min(func.greatest(CaringMessage.due_at, CaringMessage.lease_until)))
    .join(CaringContact, CaringContact.id == CaringMessage.contact_id)
    .where(
        CaringMessage.status == "pending",
        CaringContact.status == "active",
        CaringContact.channel.in_(bindparam("channels", expanding=True)),
    )
)


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    contact_id: uuid.UUID
    attempt: int


class CaringSender:
    def __init__(
        self, *, sessions: SessionFactory, settings: IntakeSettings, listener: Listener
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._http: httpx.AsyncClient | None = None
        self._queue: WorkQueue[Claimed] = WorkQueue(
            name="caring sender",
            listener=listener,
            channels=[CHANNEL],
            max_sleep=LEASE.total_seconds(),
            concurrency=settings.caring_concurrency,
            drain_seconds=12,
            jobs=self,
        )
        self.sent = 0
        #: The channels it sends on: sms with a Twilio account, email with an SMTP server.
        self.channels = channels_of(settings)

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http:
            self._http = http
            await self._queue.run()

    async def claim(self, free: int) -> Batch[Claimed]:
        if free <= 0:
            return Batch()
        async with transaction(self._sessions) as session:
            rows = await session.execute(CLAIM, {"limit": free, "channels": self.channels})
            return Batch([Claimed(r.id, r.contact_id, r.attempts) for r in rows])

    async def next_due(self) -> datetime | None:
        if self._queue.free <= 0:
            return None
        async with self._sessions() as session:
            due: datetime | None = await session.scalar(NEXT_DUE, {"channels": self.channels})
        return due

    async def send(self, item: Claimed) -> None:
        try:
            async with transaction(self._sessions) as session:
                await self._send(session, item)
        except Exception as exc:
            # The lease runs out and it is tried again: at least once, never lost.
            log.error("caring message %s: %s", item.id, type(exc).__name__, exc_info=exc)
        self._queue.wake()

    async def _send(self, session: AsyncSession, item: Claimed) -> None:
        # The opt-out guard: the enrolment, share-locked, must still be active (see the module).
        contact = await session.scalar(
            select(CaringContact)
            .where(CaringContact.id == item.contact_id)
            .with_for_update(read=True)
        )
        message = await session.get(CaringMessage, item.id, with_for_update=True)
        if contact is None or message is None or message.status != "pending":
            return
        now = utcnow()
        if contact.status != "active":
            message.status, message.finished_at, message.lease_until = "cancelled", now, None
            return
        cfg = self._settings
        body = texts.text_for(contact.language, message.sequence, contact.texts_version)
        if contact.channel == "email":
            sent = await _email(cfg, to=contact.address, body=body, language=contact.language)
        else:
            assert self._http is not None and cfg.twilio_account_sid and cfg.twilio_auth_token
            sent = await send_sms(
                self._http,
                api_base=cfg.twilio_api_base,
                account_sid=cfg.twilio_account_sid,
                auth_token=cfg.twilio_auth_token.get_secret_value(),
                to=contact.address,
                from_=cfg.caring_number or "",
                body=body,
                status_callback=f"{cfg.public_url}/v1/twilio/status",
            )
        await record(session, message, contact, sent, settings=cfg)

    async def run_due(self) -> None:
        await self._queue.run_due()


async def record(
    session: AsyncSession,
    message: CaringMessage,
    contact: CaringContact,
    sent: Sent,
    *,
    settings: IntakeSettings,
) -> None:
    """The outcome of one send: sent, retried after backoff, or failed (21610 ends it all)."""
    now = utcnow()
    message.lease_until = None
    if sent.outcome == "delivered":
        message.status, message.sent_at, message.finished_at = "sent", now, now
        message.provider_sid, message.provider_status = sent.sid, sent.status
        return
    message.last_error = sent.error
    if sent.error_code == OPTED_OUT:
        message.status, message.finished_at = "failed", now
        message.provider_status = "opted_out"
        await caring.end(session, contact, reason=caring.PROVIDER_OPT_OUT, by="provider", now=now)
        log.info("caring enrolment %s ended: the provider reports an opt-out", contact.id)
        return
    if sent.outcome == "temporary_failure" and message.attempts < settings.caring_max_attempts:
        message.due_at = retry_at(message.attempts, base=5.0, ceiling=3600.0, now=now)
        return
    message.status, message.finished_at = "failed", now
    log.warning("caring message %s failed: %s", message.id, sent.error)


#: The subject of a caring email, per language: as plain as the texts (no reason, no name).
SUBJECTS = {"en": "Thinking of you", "es": "Pensamos en ti"}
#: An email is not read for STOP: how to stop is said as it works (staff withdraw the consent).
_STOP_BY_TEXT = {
    "en": (
        "Reply STOP to end these messages.",
        "To end these messages, tell the crisis line team.",
    ),
    "es": (
        "Responde ALTO para dejar de recibir mensajes.",
        "Para dejar de recibir estos mensajes, díselo al equipo de la línea de crisis.",
    ),
}


def _by_email(body: str, language: str) -> str:
    by_text, by_email = _STOP_BY_TEXT.get(language, _STOP_BY_TEXT["en"])
    return body.replace(by_text, by_email)


async def _email(settings: IntakeSettings, *, to: str, body: str, language: str) -> Sent:
    """A caring message by email, through the SMTP server (shared/mail.py)."""
    message = EmailMessage()
    message["Subject"] = SUBJECTS.get(language, SUBJECTS["en"])
    message["From"] = settings.smtp_from
    message["To"] = to
    message.set_content(_by_email(body, language) + "\n")
    mailed = await send_mail(settings, message, timeout=10.0)
    return Sent(
        mailed.outcome, status="sent" if mailed.outcome == "delivered" else None, error=mailed.error
    )


def channels_of(settings: IntakeSettings) -> list[str]:
    """The channels caring messages can go on here: sms with a Twilio account and a caring
    number, email with an SMTP server. Messages on another wait, never dropped."""
    channels = []
    if settings.twilio_configured and settings.caring_number:
        channels.append("sms")
    if settings.smtp_host:
        channels.append("email")
    return channels


def start_sender(runtime: Runtime, settings: IntakeSettings) -> CaringSender | None:
    """Run the sender for the service's lifetime, on the channels configured."""
    channels = channels_of(settings)
    if "sms" not in channels:
        log.warning(
            "Caring Contacts by SMS are not sent: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
            "CARING_FROM_NUMBER (or TWILIO_FROM_NUMBER) are needed"
        )
    if "email" not in channels:
        log.warning("Caring Contacts by email are not sent: SMTP_HOST is needed")
    if not channels:
        return None
    sender = CaringSender(sessions=runtime.sessions, settings=settings, listener=runtime.listener)
    runtime.spawn(sender.run(), name="intake-caring-sender")
    return sender
