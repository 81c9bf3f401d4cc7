"""The sms and voice channels: a page handed to Twilio's REST API (shared/twilio.py).

The provider's answer to the send is only "accepted" (queued): the page's fate comes later, in
its status callback (api.py). A text's `delivered` delivers the page; a call delivers nothing:
only a pressed 1 acknowledges. If the report never comes, `overdue_report` decides: a text the
provider took counts as delivered (many carriers never confirm, and the acknowledgement
deadline still escalates), a call counts as failed.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any

import httpx

from services.notify.delivery.channels import Outcome, Page
from services.notify.phones.codes import code_of
from services.notify.phones.texts import sms_text
from services.notify.settings import NotifySettings
from shared.db import SessionFactory, driver
from shared.twilio import INVALID_TO, UNSUBSCRIBED, Account, Created, create

log = logging.getLogger(__name__)


def callback_url(settings: NotifySettings, route: str, page: Page) -> str:
    """Where the provider reports on this attempt of this page (signed by it, checked here)."""
    base = settings.public_url.rstrip("/")
    return f"{base}/v1/twilio/{route}?d={page.delivery_id}&n={page.attempt}"


def outcome_of(created: Created) -> Outcome:
    """The send's outcome from the provider's answer."""
    if created.accepted:
        return Outcome("accepted", http_status=created.http_status, provider_sid=created.sid)
    if created.retryable:
        return Outcome("temporary_failure", http_status=created.http_status, error=created.error)
    return Outcome(
        "permanent_failure",
        http_status=created.http_status,
        error=created.error,
        opted_out=created.error_code == UNSUBSCRIBED,
    )


def overdue_report(page: Page, settings: NotifySettings) -> Outcome:
    """A page the provider accepted and never reported on in time."""
    if page.channel == "voice":
        return Outcome(
            "permanent_failure",
            error=f"no report of the call in {settings.call_status_wait_seconds:g} s",
        )
    return Outcome(
        "delivered",
        error=f"accepted; no delivery report in {settings.sms_status_wait_seconds:g} s",
    )


class _PhoneChannel(ABC):
    """What texts and calls share: the account, the send, the outcome; each says its form."""

    #: Twilio's list resource the channel creates: Messages or Calls.
    resource: str

    def __init__(
        self, *, http: httpx.AsyncClient, settings: NotifySettings, sessions: SessionFactory
    ) -> None:
        #: Twilio's API is the operator's own address (TWILIO_API_BASE): not SSRF-guarded.
        self._http = http
        self._settings = settings
        self._sessions = sessions

    @property
    def account(self) -> Account | None:
        return self._settings.twilio

    async def send(self, page: Page, address: str, payload: dict[str, Any]) -> Outcome:
        account = self.account
        if account is None or not account.from_number:
            return Outcome(
                "permanent_failure",
                error="no Twilio account configured (TWILIO_ACCOUNT_SID, TWILIO_FROM_NUMBER)",
            )
        form = {"To": address, "From": account.from_number, **await self.form(page, payload)}
        try:
            created = await create(
                self._http,
                account,
                self.resource,
                form,
                timeout=self._settings.delivery_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            return Outcome("temporary_failure", error=f"Twilio: {type(exc).__name__}")
        if created.error_code in INVALID_TO:
            log.warning("page %s: the provider refused the number", page.delivery_id)
        return outcome_of(created)

    @abstractmethod
    async def form(self, page: Page, payload: dict[str, Any]) -> dict[str, str]:
        """The create request's form fields besides To and From."""


class SmsChannel(_PhoneChannel):
    """A text: the level, the alert's code, how to acknowledge, the console's link."""

    resource = "Messages"

    async def form(self, page: Page, payload: dict[str, Any]) -> dict[str, str]:
        async with self._sessions() as session:
            code = await code_of(await driver(session, begin=False), page.alert_id)
        console = self._settings.console_public_url.rstrip("/")
        return {
            "Body": sms_text(
                risk_level=page.risk_level, code=code, case_url=f"{console}/alerts/{page.alert_id}"
            ),
            "StatusCallback": callback_url(self._settings, "status", page),
        }


class VoiceChannel(_PhoneChannel):
    """A call: its TwiML (the voice route) says the level and waits for a pressed 1. Twilio's
    answering-machine detection is on, so a voicemail is hung up on, never counted."""

    resource = "Calls"

    async def form(self, page: Page, payload: dict[str, Any]) -> dict[str, str]:
        return {
            "Url": callback_url(self._settings, "voice", page),
            "Method": "POST",
            "StatusCallback": callback_url(self._settings, "status", page),
            "StatusCallbackMethod": "POST",
            "MachineDetection": "Enable",
            "Timeout": str(self._settings.call_ring_seconds),
        }
