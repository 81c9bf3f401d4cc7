"""Twilio's REST API and webhooks, as Twilio documents them, for any service that texts people.

Provider-neutral plumbing, no business rules: the account's settings (`TwilioSettings`, a mixin
for a service's settings), sending one SMS (`send_sms`: `POST {TWILIO_API_BASE}/2010-04-01/
Accounts/{sid}/Messages.json`, form-encoded `To`/`From`/`Body`/`StatusCallback`, HTTP basic auth
`sid:token`), and checking an inbound webhook (`signature_valid`: the official `twilio`
package's RequestValidator over the public URL the provider called, never the Host header, with
the current or the previous token, so a token can be rotated without refusing callbacks in
flight).

A send's outcome is a `Sent`: `delivered` (Twilio accepted it: a sid and a status),
`temporary_failure` (no answer, a 429 or a 5xx: try again later) or `permanent_failure` (a 4xx
with Twilio's error code; e.g. 21610, the person texted STOP to this number). Its `error` names
the code and Twilio's message, never the number or the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings
from twilio.request_validator import RequestValidator

API_VERSION = "2010-04-01"
#: Twilio's error for a recipient who opted out (texted STOP) of messages from this number.
OPTED_OUT = 21610


class TwilioSettings(BaseSettings):
    """The account: mix into a service's settings (`class XSettings(ServiceSettings,
    TwilioSettings)`); unset `TWILIO_ACCOUNT_SID` means no SMS."""

    twilio_account_sid: str | None = Field(None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(None, validation_alias="TWILIO_AUTH_TOKEN")
    #: The token before the last rotation: inbound signatures made with it are still accepted.
    twilio_auth_token_previous: SecretStr | None = Field(
        None, validation_alias="TWILIO_AUTH_TOKEN_PREVIOUS"
    )
    twilio_from_number: str | None = Field(None, validation_alias="TWILIO_FROM_NUMBER")
    twilio_api_base: str = Field("https://api.twilio.com", validation_alias="TWILIO_API_BASE")

    @property
    def twilio_configured(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    def twilio_tokens(self) -> list[str]:
        """The tokens an inbound signature may be made with: current first, then previous."""
        return [
            t.get_secret_value()
            for t in (self.twilio_auth_token, self.twilio_auth_token_previous)
            if t is not None and t.get_secret_value()
        ]


Outcome = Literal["delivered", "temporary_failure", "permanent_failure"]


@dataclass(frozen=True)
class Sent:
    outcome: Outcome
    sid: str | None = None
    status: str | None = None
    http_status: int | None = None
    error_code: int | None = None
    error: str | None = None


def messages_url(api_base: str, account_sid: str) -> str:
    return f"{api_base.rstrip('/')}/{API_VERSION}/Accounts/{account_sid}/Messages.json"


async def send_sms(
    http: httpx.AsyncClient,
    *,
    api_base: str,
    account_sid: str,
    auth_token: str,
    to: str,
    from_: str,
    body: str,
    status_callback: str | None = None,
    timeout: float = 10.0,
) -> Sent:
    """POST one message to Twilio's Messages resource; never raises for the provider's answer."""
    form = {"To": to, "From": from_, "Body": body}
    if status_callback:
        form["StatusCallback"] = status_callback
    try:
        response = await http.post(
            messages_url(api_base, account_sid),
            data=form,
            auth=(account_sid, auth_token),
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        return Sent("temporary_failure", error=f"no answer from the provider: {type(exc).__name__}")
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    if response.status_code in (200, 201):
        return Sent(
            "delivered",
            sid=str(answer.get("sid") or "") or None,
            status=str(answer.get("status") or "queued"),
            http_status=response.status_code,
        )
    code = answer.get("code")
    error_code = code if isinstance(code, int) else None
    message = str(answer.get("message") or "")[:200]
    error = f"twilio {response.status_code}" + (f" error {error_code}" if error_code else "")
    if message:
        error += f": {message}"
    temporary = response.status_code == 429 or response.status_code >= 500
    return Sent(
        "temporary_failure" if temporary else "permanent_failure",
        http_status=response.status_code,
        error_code=error_code,
        error=error,
    )


def public_url(base: str, path: str, query: str = "") -> str:
    """The URL the provider called, as it signed it: the configured public base (never the
    request's Host header, which a client chooses), the path, and the query if any."""
    url = base.rstrip("/") + path
    return f"{url}?{query}" if query else url


def signature_valid(
    url: str, params: Mapping[str, str], signature: str | None, tokens: list[str]
) -> bool:
    """Whether `X-Twilio-Signature` is Twilio's for this URL and form, under any of `tokens`."""
    if not signature or not tokens:
        return False
    return any(RequestValidator(token).validate(url, dict(params), signature) for token in tokens)
