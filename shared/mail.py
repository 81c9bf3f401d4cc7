"""Email through the operator's SMTP server (aiosmtplib): notify's email pages and intake's
Caring Contacts by email. One answer to "did it go": delivered, or failed for a reason a retry
may cure (SMTP 4xx, a dropped connection, a timeout) or for one it will not (SMTP 5xx)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
from pydantic import Field
from pydantic_settings import BaseSettings


class SmtpSettings(BaseSettings):
    """The SMTP server, as a mixin of a service's settings; without SMTP_HOST no email goes."""

    smtp_host: str | None = Field(None, validation_alias="SMTP_HOST")
    smtp_port: int = Field(25, validation_alias="SMTP_PORT")
    smtp_from: str = Field("triage-notify@localhost", validation_alias="SMTP_FROM")
    smtp_username: str | None = Field(None, validation_alias="SMTP_USERNAME")
    smtp_password: str | None = Field(None, validation_alias="SMTP_PASSWORD", repr=False)
    smtp_starttls: bool = Field(False, validation_alias="SMTP_STARTTLS")


@dataclass(frozen=True)
class Mailed:
    outcome: str  # "delivered" | "temporary_failure" | "permanent_failure"
    error: str | None = None


async def send_mail(settings: SmtpSettings, message: EmailMessage, *, timeout: float) -> Mailed:
    """Hand `message` to the SMTP server; never raises for the server's answer or the network.
    The error names the SMTP code, never an address."""
    if not settings.smtp_host:
        return Mailed("permanent_failure", "no SMTP server configured (SMTP_HOST)")
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            # Required when configured; otherwise used when the server offers it.
            start_tls=True if settings.smtp_starttls else None,
            timeout=timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        kind = "permanent_failure" if codes and min(codes) >= 500 else "temporary_failure"
        return Mailed(kind, f"SMTP {min(codes) if codes else '?'} recipient refused")
    except aiosmtplib.SMTPResponseException as exc:
        return Mailed(
            "permanent_failure" if exc.code >= 500 else "temporary_failure", f"SMTP {exc.code}"
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Mailed("temporary_failure", type(exc).__name__)
    return Mailed("delivered")
