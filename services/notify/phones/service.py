"""What the phone answers: replies to texts, keys pressed in calls, and the provider's reports
on each text and call. Functions here flush; the caller commits (one transaction per request).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from services.notify.alerts.models import Alert
from services.notify.alerts.service import acknowledge
from services.notify.delivery.channels import Outcome
from services.notify.delivery.service import record_outcome
from services.notify.models import sealed
from services.notify.phones import queries, texts
from services.notify.phones.replies import Command, read
from services.notify.settings import NotifySettings
from shared.db import driver
from shared.errors import Conflict
from shared.events import utcnow
from shared.phi import PhiUnreadable, ring_of
from shared.twilio import UNSUBSCRIBED, e164

log = logging.getLogger(__name__)

#: Replies in a row that changed nothing, answered; past this the phone gets no answer (an
#: auto-responder would answer our answer, forever).
MAX_UNANSWERED = 5
#: A text's and a call's final statuses (Twilio's), and which of them delivers a page.
MESSAGE_FAILED = frozenset({"undelivered", "failed"})
CALL_ENDED = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


@dataclass(frozen=True)
class PhoneMethod:
    id: uuid.UUID
    clinician_id: uuid.UUID
    clinician: str
    kind: str
    unanswered_replies: int


@dataclass
class Reply:
    """What a reply did: the text answering it (None: no answer), and the alerts it
    acknowledged, each with the clinician who did."""

    text: str | None
    acknowledged: list[Alert] = field(default_factory=list)
    clinician: str | None = None


async def methods_of(session: AsyncSession, number: str) -> list[PhoneMethod]:
    """The phone methods with this number. Addresses are sealed, so each is opened and
    compared here (a clinic has hundreds of phones at most); one that cannot be read is
    skipped."""
    try:
        wanted = e164(number)
    except ValueError:
        return []
    ring, column = ring_of(session), sealed("contact_methods")
    found = []
    for row in await (await driver(session)).fetch(queries.PHONE_METHODS):
        try:
            address = column.open(ring, {"id": row["id"]}, row["address"])
        except PhiUnreadable:
            continue
        if address == wanted:
            found.append(
                PhoneMethod(
                    id=row["id"],
                    clinician_id=row["clinician_id"],
                    clinician=row["clinician"],
                    kind=row["kind"],
                    unanswered_replies=row["unanswered_replies"],
                )
            )
    return found


async def handle_reply(session: AsyncSession, *, number: str, body: str) -> Reply:
    """A text from `number`: acknowledge, stop, start, or a polite word on what works.

    A number that is no clinician's phone changes nothing and gets no answer."""
    methods = await methods_of(session, number)
    if not methods:
        log.info("a reply from a number that is no clinician's phone: ignored")
        return Reply(None)
    conn = await driver(session)
    ids = [m.id for m in methods]
    command = read(body)
    now = utcnow()
    if command.kind == "stop":
        await conn.execute(
            queries.OPT_OUT_TEXTS.sql, *queries.OPT_OUT_TEXTS.args(method_ids=ids, now=now)
        )
        await conn.execute(queries.ANSWERED.sql, *queries.ANSWERED.args(method_ids=ids))
        # The provider answers STOP itself (and would refuse our answer).
        return Reply(None, clinician=methods[0].clinician)
    if command.kind == "start":
        await conn.execute(queries.OPT_IN_TEXTS.sql, *queries.OPT_IN_TEXTS.args(method_ids=ids))
        await conn.execute(queries.ANSWERED.sql, *queries.ANSWERED.args(method_ids=ids))
        return Reply("Pages by text to this phone resumed.", clinician=methods[0].clinician)
    if command.kind != "unknown":
        done = await _acknowledge(session, command, methods)
        if done.acknowledged:
            await conn.execute(queries.ANSWERED.sql, *queries.ANSWERED.args(method_ids=ids))
            return done
        answer = done.text
    else:
        answer = "Reply 1 to acknowledge the newest alert paged to this phone, or its code."
    # Changed nothing: answered a few times, then no more (an auto-responder's loop).
    await conn.execute(queries.UNANSWERED.sql, *queries.UNANSWERED.args(method_ids=ids))
    if max(m.unanswered_replies for m in methods) >= MAX_UNANSWERED:
        return Reply(None, clinician=methods[0].clinician)
    return Reply(answer, clinician=methods[0].clinician)


async def _acknowledge(
    session: AsyncSession, command: Command, methods: list[PhoneMethod]
) -> Reply:
    """Acknowledge what `command` names among the open alerts paged to these methods."""
    by_id = {m.id: m for m in methods}
    conn = await driver(session)
    ids = list(by_id)
    rows = await conn.fetch(
        queries.OPEN_ALERTS_PAGED.sql, *queries.OPEN_ALERTS_PAGED.args(method_ids=ids)
    )
    if command.kind == "ack_code":
        rows = [r for r in rows if r["reply_code"] == command.code]
        if not rows:
            return Reply(
                f"No open alert paged to this phone has the code {command.code}. "
                "Reply 1 for the newest."
            )
    elif command.kind == "ack":
        rows = rows[:1]
    if not rows:
        return Reply("No open alert was paged to this phone.")
    done = Reply(None)
    for row in rows:
        clinician = by_id[row["contact_method_id"]].clinician
        try:
            alert, now_acknowledged = await acknowledge(session, alert_id=row["id"], by=clinician)
        except Conflict:  # resolved meanwhile
            continue
        await conn.execute(
            queries.RECORD_REPLY.sql,
            *queries.RECORD_REPLY.args(alert_id=row["id"], method_ids=ids, reply=command.recorded),
        )
        if now_acknowledged:
            done.acknowledged.append(alert)
        done.clinician = clinician
    named = ", ".join(
        f"{r['risk_level'].upper()} alert {r['reply_code']}"
        if r["reply_code"]
        else r["risk_level"].upper() + " alert"
        for r in rows
    )
    done.text = f"Acknowledged: {named}. Paging stopped."
    if not done.acknowledged:
        done.text = "That alert is no longer open."
    return done


@dataclass(frozen=True)
class Report:
    """A provider's status callback."""

    delivery_id: uuid.UUID
    attempt: int
    sid: str
    status: str
    #: Twilio's error code for a failed text, if any.
    error_code: int | None = None
    #: A call's `AnsweredBy` (human, machine_start, fax, unknown), if detection ran.
    answered_by: str | None = None


@dataclass(frozen=True)
class Applied:
    """What a report changed: the recorded outcome, and the alert's level (for the metrics)."""

    first_delivery_after: float | None
    risk_level: str


async def apply_report(
    session: AsyncSession, report: Report, *, settings: NotifySettings
) -> Applied | None:
    """Apply a status callback once (a repeat of the same sid and status changes nothing).

    A report on the page's current attempt decides it: a text `delivered` delivers it, one
    `undelivered` or `failed` fails it for good (the clinician's next method is due at once);
    a call that ended is a failed attempt whatever its status (a pressed 1 has acknowledged
    the alert already, and then there is nothing left to fail). It applies even when it comes
    before the send's own answer was recorded."""
    conn = await driver(session)
    first = await conn.fetchval(
        queries.FIRST_CALLBACK.sql,
        *queries.FIRST_CALLBACK.args(sid=report.sid, event=f"status:{report.status}", now=utcnow()),
    )
    if first is None:
        return None
    page = await conn.fetchrow(queries.PAGE.sql, *queries.PAGE.args(id=report.delivery_id))
    if page is None or page["channel"] not in ("sms", "voice"):
        log.warning("a status report on no page of ours: ignored")
        return None
    await conn.execute(
        queries.PROVIDER_STATUS.sql,
        *queries.PROVIDER_STATUS.args(id=report.delivery_id, sid=report.sid, status=report.status),
    )
    if page["attempts"] != report.attempt:
        return None  # about an earlier attempt: the current one decides
    outcome = _outcome(page["channel"], report)
    if outcome is None:
        return None
    recorded = await record_outcome(
        session,
        delivery_id=report.delivery_id,
        alert_id=page["alert_id"],
        attempt=None,
        outcome=outcome,
        settings=settings,
    )
    return Applied(recorded.first_delivery_after, page["risk_level"])


def _outcome(channel: str, report: Report) -> Outcome | None:
    if channel == "sms":
        if report.status == "delivered":
            return Outcome("delivered")
        if report.status in MESSAGE_FAILED:
            code = f" (error {report.error_code})" if report.error_code else ""
            return Outcome(
                "permanent_failure",
                error=f"text {report.status}{code}",
                opted_out=report.error_code == UNSUBSCRIBED,
            )
        return None
    if report.status in CALL_ENDED:
        machine = (report.answered_by or "").startswith(("machine", "fax"))
        why = "answered by a machine" if machine else f"{report.status}, no 1 pressed"
        return Outcome("permanent_failure", error=f"call {why}")
    return None


async def call_document(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    attempt: int,
    answered_by: str | None,
    settings: NotifySettings,
) -> str:
    """The TwiML of a page's call: its prompt, or a goodbye when there is nothing to ask."""
    conn = await driver(session)
    page = await conn.fetchrow(queries.PAGE.sql, *queries.PAGE.args(id=delivery_id))
    if page is None:
        return texts.call_says("This call is about no alert. Goodbye.")
    if (answered_by or "").startswith(("machine", "fax")):
        await conn.execute(
            queries.PAGE_REPLY.sql, *queries.PAGE_REPLY.args(id=delivery_id, reply="(machine)")
        )
        return texts.hang_up()
    if page["alert_status"] in ("acknowledged", "resolved"):
        return texts.call_says("This alert was already acknowledged. Goodbye.")
    return texts.call_prompt(
        risk_level=page["risk_level"], gather_url=gather_url(settings, delivery_id, attempt)
    )


def gather_url(settings: NotifySettings, delivery_id: uuid.UUID, attempt: int) -> str:
    return f"{settings.public_url.rstrip('/')}/v1/twilio/voice/gather?d={delivery_id}&n={attempt}"


@dataclass(frozen=True)
class Pressed:
    document: str
    acknowledged: Alert | None = None
    clinician: str | None = None


async def key_pressed(
    session: AsyncSession,
    *,
    delivery_id: uuid.UUID,
    attempt: int,
    call_sid: str,
    digits: str,
    settings: NotifySettings,
) -> Pressed:
    """A key pressed in a page's call: only a 1 acknowledges, once (a repeat of the same
    CallSid and Digits changes nothing twice)."""
    conn = await driver(session)
    page = await conn.fetchrow(queries.PAGE.sql, *queries.PAGE.args(id=delivery_id))
    if page is None:
        return Pressed(texts.call_says("This call is about no alert. Goodbye."))
    if digits != "1":
        again = gather_url(settings, delivery_id, attempt)
        return Pressed(texts.call_says("Only 1 acknowledges. Press 1 to acknowledge.", again=again))
    first = await conn.fetchval(
        queries.FIRST_CALLBACK.sql,
        *queries.FIRST_CALLBACK.args(sid=call_sid, event=f"digits:{digits}", now=utcnow()),
    )
    if first is None or page["alert_status"] in ("acknowledged", "resolved"):
        return Pressed(texts.call_says("This alert is acknowledged. Goodbye."))
    clinician = page["clinician"] or "phone"
    try:
        alert, _ = await acknowledge(session, alert_id=page["alert_id"], by=clinician)
    except Conflict:
        return Pressed(texts.call_says("This alert is closed. Goodbye."))
    await conn.execute(
        queries.PAGE_REPLY.sql, *queries.PAGE_REPLY.args(id=delivery_id, reply="pressed 1")
    )
    return Pressed(
        texts.call_says("Acknowledged. Paging has stopped. Thank you."),
        acknowledged=alert,
        clinician=clinician,
    )
