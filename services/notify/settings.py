from __future__ import annotations

import httpx
from pydantic import Field, field_validator

from shared.mail import SmtpSettings
from shared.settings import ServiceSettings
from shared.twilio import Account, e164


class NotifySettings(ServiceSettings, SmtpSettings):
    host: str = Field("127.0.0.1", validation_alias="NOTIFY_HOST")
    port: int = Field(8003, validation_alias="NOTIFY_PORT")
    #: Where pages go when no schedule covers now.
    oncall_webhook_url: str | None = Field(None, validation_alias="ONCALL_WEBHOOK_URL")
    #: After the last step of a policy, the last level is paged again this often until someone
    #: acknowledges: an alert is reported failed, but it is never given up.
    final_repage_seconds: float = Field(60.0, validation_alias="FINAL_REPAGE_SECONDS")

    @field_validator("oncall_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """A typo here would leave every page failing; refuse to start instead."""
        if value is None:
            return None
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError("ONCALL_WEBHOOK_URL is not a valid URL") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("ONCALL_WEBHOOK_URL must be an http(s) URL with a host")
        return value

    #: Signs outgoing webhooks; generated at first start and stored when unset.
    alert_webhook_secret: str | None = Field(None, validation_alias="ALERT_WEBHOOK_SECRET")
    #: The secret being rotated out: pages carry both signatures.
    alert_webhook_secret_previous: str | None = Field(
        None, validation_alias="ALERT_WEBHOOK_SECRET_PREVIOUS"
    )
    #: Ack links are signed with a key derived from this (never with the webhook secret, which
    #: every pager gateway holds); generated at first start and stored when unset.
    ack_link_secret: str | None = Field(None, validation_alias="ACK_LINK_SECRET", repr=False)
    #: The ack link secret being rotated out: links signed with it are still accepted.
    ack_link_secret_previous: str | None = Field(
        None, validation_alias="ACK_LINK_SECRET_PREVIOUS", repr=False
    )
    #: The base URL clinicians reach notify at; used to build the signed ack_url in each page.
    public_url: str = Field("http://127.0.0.1:8003", validation_alias="NOTIFY_PUBLIC_URL")
    #: Intake's base URL as clinicians reach it; pages link to the case (no PHI in the page itself).
    intake_public_url: str = Field("http://127.0.0.1:8001", validation_alias="INTAKE_PUBLIC_URL")
    #: The web console as clinicians reach it: the ack page links to the alert's case there.
    console_public_url: str = Field("http://127.0.0.1:8004", validation_alias="CONSOLE_PUBLIC_URL")
    ack_link_ttl_seconds: int = Field(24 * 3600, validation_alias="ACK_LINK_TTL_SECONDS")
    #: Acknowledgement deadline per risk level before escalation (clinical-rules.md defaults).
    ack_deadline_seconds: dict[str, int] = Field(
        {"imminent": 120, "high": 300, "moderate": 1800}, validation_alias="ACK_DEADLINE_SECONDS"
    )
    #: A screening not assessed this long after submission is paged for review by hand
    #: (services/notify/watchdog/service.py).
    assessment_deadline_seconds: float = Field(
        30.0, gt=0, validation_alias="ASSESSMENT_DEADLINE_SECONDS"
    )
    #: How many escalation levels beyond the first page.
    max_escalation_level: int = Field(3, validation_alias="MAX_ESCALATION_LEVEL")
    delivery_timeout_seconds: float = Field(5.0, validation_alias="DELIVERY_TIMEOUT_SECONDS")
    #: Attempts per page before it counts as failed and the alert escalates.
    delivery_max_attempts: int = Field(6, validation_alias="DELIVERY_MAX_ATTEMPTS")
    retry_base_seconds: float = Field(0.5, validation_alias="RETRY_BASE_SECONDS")
    retry_max_seconds: float = Field(30.0, validation_alias="RETRY_MAX_SECONDS")
    #: Retry cadence while no on-call target is configured at all (the alert waits, never lost).
    no_target_retry_seconds: float = Field(30.0, validation_alias="NO_TARGET_RETRY_SECONDS")
    delivery_concurrency: int = Field(64, ge=1, validation_alias="DELIVERY_CONCURRENCY")
    #: How long a claimed page is reserved for the process sending it; a process that dies
    #: mid-send leaves a claim that expires after this, and the page goes out again.
    delivery_lease_seconds: float = Field(15.0, validation_alias="DELIVERY_LEASE_SECONDS")

    @property
    def repeat_slots(self) -> int:
        """How many sends may be repeats of unanswered pages: an eighth of the slots (at least
        one) is kept for first pages, so a new alert never waits for a repeat to finish."""
        kept = max(1, self.delivery_concurrency // 8)
        return max(1, self.delivery_concurrency - kept)  # one slot alone is shared

    @property
    def send_budget_seconds(self) -> float:
        """How long one send may take, all of it (connect, TLS, every SMTP step): within the
        delivery timeout, and well within the lease, so that no other replica claims a page
        while its send can still succeed (which would send it twice)."""
        return min(self.delivery_timeout_seconds, 0.8 * self.delivery_lease_seconds)

    # Email pages go through the SMTP server of `SmtpSettings` (SMTP_HOST, ...): without it an
    # email contact method cannot be reached.

    #: Pages by SMS and voice call: Twilio's REST API (or the bundled local stand-in, which
    #: `make run` starts and points TWILIO_API_BASE at when no account is configured). Without
    #: an account an sms or voice method cannot be reached, and its pages fail over at once.
    twilio_account_sid: str | None = Field(None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = Field(None, validation_alias="TWILIO_AUTH_TOKEN", repr=False)
    #: The token being rotated out: webhooks signed with it are still accepted.
    twilio_auth_token_previous: str | None = Field(
        None, validation_alias="TWILIO_AUTH_TOKEN_PREVIOUS", repr=False
    )
    #: The number texts and calls come from (E.164), and the one clinicians reply to.
    twilio_from_number: str | None = Field(None, validation_alias="TWILIO_FROM_NUMBER")
    twilio_api_base: str = Field("https://api.twilio.com", validation_alias="TWILIO_API_BASE")
    #: A text the provider accepted but never reported on in this time counts as delivered
    #: (many carriers never confirm): the acknowledgement deadline then runs as for any page.
    sms_status_wait_seconds: float = Field(60.0, gt=0, validation_alias="SMS_STATUS_WAIT_SECONDS")
    #: A call the provider accepted but never reported the end of in this time failed.
    call_status_wait_seconds: float = Field(
        180.0, gt=0, validation_alias="CALL_STATUS_WAIT_SECONDS"
    )
    #: Seconds a call rings before it counts as not answered (Twilio's `Timeout`).
    call_ring_seconds: int = Field(30, ge=5, le=600, validation_alias="CALL_RING_SECONDS")

    @field_validator("twilio_from_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            return e164(value)
        except ValueError as exc:
            raise ValueError(
                "TWILIO_FROM_NUMBER must be an E.164 number, e.g. +15555550100"
            ) from exc

    @property
    def twilio(self) -> Account | None:
        """The Twilio account pages go through, when one is configured."""
        if not (self.twilio_account_sid and self.twilio_auth_token):
            return None
        return Account(
            sid=self.twilio_account_sid,
            token=self.twilio_auth_token,
            previous_token=self.twilio_auth_token_previous,
            from_number=self.twilio_from_number or "",
            api_base=self.twilio_api_base,
        )
