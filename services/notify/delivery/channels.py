"""How a page reaches a clinician: a signed webhook (pager or phone gateway) or an email.

Both channels answer one question the same way: was the page delivered, or did it fail for a
reason a retry may cure (timeouts, 429, 5xx, SMTP 4xx, a dropped connection), or for one it will
not (any other 4xx, SMTP 5xx)? A permanent failure escalates at once; a temporary one is retried
with backoff. A page carries ids, the level, urgency and reasons, and links: never PHI.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp

from services.notify.settings import NotifySettings
from shared.mail import send_mail
from shared.webhooks import post_signed


@dataclass(frozen=True)
class Page:
    """One claimed attempt, with what a page needs; no PHI."""

    delivery_id: uuid.UUID
    attempt: int
    escalation_level: int
    repeat_round: int
    alert_id: uuid.UUID
    screening_id: uuid.UUID
    risk_level: str
    urgency: str | None
    reasons: list[str]
    created_at: datetime
    channel: str
    #: The planned address; None for the fallback (ONCALL_WEBHOOK_URL, read at send time).
    target: str | None
    #: The trace context the alert was opened in (shared/tracing.py), None when off.
    traceparent: str | None = None
    #: A text or call the provider accepted for this page, awaiting its final status; claimed
    #: again only when that status is overdue (services/notify/phones/).
    provider_sid: str | None = None


@dataclass(frozen=True)
class Outcome:
    #: "delivered" | "temporary_failure" | "permanent_failure", or "accepted": a provider took
    #: the text or call and reports its fate later (services/notify/phones/).
    outcome: str
    http_status: int | None = None
    error: str | None = None
    #: Seconds the receiver asked us to wait (Retry-After on 429/503).
    retry_after: float | None = None
    #: The provider's id of what it accepted.
    provider_sid: str | None = None
    #: The provider refused the number as unsubscribed (it texted STOP): the method opts out.
    opted_out: bool = False


def page_payload(page: Page, *, ack_url: str, case_url: str) -> dict[str, Any]:
    """The contract's page body (plus the case link and the round), the same on every channel."""
    return {
        "alert_id": str(page.alert_id),
        "screening_id": str(page.screening_id),
        "risk_level": page.risk_level,
        "urgency": page.urgency,
        "reasons": page.reasons,
        "escalation_level": page.escalation_level,
        "repeat": page.repeat_round,
        "created_at": page.created_at.isoformat(),
        "ack_url": ack_url,
        "case_url": case_url,
    }


class Channel(Protocol):
    async def send(self, page: Page, address: str, payload: dict[str, Any]) -> Outcome: ...


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class WebhookChannel:
    """POSTs the page signed as the contract says, with every current secret (rotation).

    The one way notify POSTs anything (pages and reminders alike,
    services/notify/reminders/sender.py): within the channel's deadline, the whole exchange,
    reading at most a few KB of the answer (shared/webhooks.py `post_signed`), and through the
    SSRF guard unless the address is the operator's own."""

    def __init__(
        self,
        *,
        http: aiohttp.ClientSession,
        secrets: list[str],
        timeout: float,
        guarded: aiohttp.ClientSession | None = None,
        trusted: Collection[str] = (),
    ) -> None:
        #: `http` for the operator's own addresses (`trusted`: ONCALL_WEBHOOK_URL); `guarded`
        #: (shared/outbound.py) for every address that came through the API.
        self._http = http
        self._guarded = guarded or http
        self._trusted = frozenset(trusted)
        self._secrets = secrets
        #: The whole exchange, not each phase: a 2xx after the deadline is no delivery.
        self._timeout = timeout

    async def send(self, page: Page, address: str, payload: dict[str, Any]) -> Outcome:
        return await self.post(address, payload, event_id=page.delivery_id)

    async def post(self, address: str, payload: dict[str, Any], *, event_id: object) -> Outcome:
        """POST `payload` signed to `address`; `event_id` is the same on every retry."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        client = self._http if address in self._trusted else self._guarded
        answer = await post_signed(
            client,
            address,
            body,
            secrets=self._secrets,
            event_id=event_id,
            deadline=self._timeout,
        )
        status = answer.http_status
        wait = retry_after(answer.retry_after) if status in (429, 503) else None
        return Outcome(answer.outcome, http_status=status, error=answer.error, retry_after=wait)


def email_message(page: Page, payload: dict[str, Any], *, sender: str, to: str) -> EmailMessage:
    """A plain-text page: level, urgency, reasons, the ack link and the case link; no PHI."""
    level = page.risk_level.upper()
    urgency = page.urgency or "non-urgent"
    msg = EmailMessage()
    msg["Subject"] = f"[triage] {level} risk alert ({urgency}), acknowledge"
    msg["From"] = sender
    msg["To"] = to
    # Constant across retries, like X-Triage-Event-Id, so a mail system can deduplicate.
    msg["Message-ID"] = f"<{page.delivery_id}@triage-notify>"
    msg["X-Triage-Event-Id"] = str(page.delivery_id)
    reasons = "\n".join(f"  - {r}" for r in page.reasons) or "  (none given)"
    msg.set_content(
        f"A screening was assessed at {level} risk ({urgency}).\n\n"
        f"Reasons:\n{reasons}\n\n"
        f"Escalation level: {page.escalation_level}"
        + (f", round {page.repeat_round + 1}" if page.repeat_round else "")
        + "\n\n"
        f"Acknowledge (stops escalation and further pages):\n  {payload['ack_url']}\n\n"
        f"Open the case:\n  {payload['case_url']}\n\n"
        "This message carries no personal details; the case view has them.\n"
    )
    return msg


class EmailChannel:
    """Sends the page through the configured SMTP server (any server: aiosmtplib)."""

    def __init__(self, settings: NotifySettings) -> None:
        self._settings = settings

    async def send(self, page: Page, address: str, payload: dict[str, Any]) -> Outcome:
        s = self._settings
        message = email_message(page, payload, sender=s.smtp_from, to=address)
        mailed = await send_mail(s, message, timeout=s.delivery_timeout_seconds)
        return Outcome(mailed.outcome, error=mailed.error)
