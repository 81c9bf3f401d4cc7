"""Twilio's REST API and webhooks, as Twilio documents them: what notify pages clinicians with,
and what intake texts people with (Caring Contacts, services/intake/follow_ups/).

Outbound: `POST {api_base}/2010-04-01/Accounts/{sid}/Messages.json` and `Calls.json`,
form-encoded, HTTP basic auth `sid:token`; the answer is the created resource (201) or an error
`{"code", "message", "status"}`. Inbound: every webhook carries `X-Twilio-Signature`, checked by
the official `twilio` package's RequestValidator over the URL Twilio called (our configured
public base, path and query: never the Host header, so it holds behind a TLS proxy) and the
form's parameters, under the current token or the one being rotated out.

Works the same against Twilio and against the bundled local stand-in (deploy/phones).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import phonenumbers
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings
from starlette.datastructures import FormData
from starlette.requests import Request
from twilio.request_validator import RequestValidator

#: The header every Twilio webhook is signed in.
SIGNATURE_HEADER = "X-Twilio-Signature"
#: Twilio's error codes a send can answer with that no retry will cure for that number.
UNSUBSCRIBED = 21610  # the recipient texted STOP to this sender
OPTED_OUT = UNSUBSCRIBED
INVALID_TO = frozenset({21211, 21214, 21217, 21612, 21614})


@dataclass(frozen=True)
class Account:
    """One Twilio account as configured (the token is a secret: never logged nor shown)."""

    sid: str
    token: str
    from_number: str
    api_base: str = "https://api.twilio.com"
    #: The token being rotated out: webhooks signed with it are still accepted.
    previous_token: str | None = None

    def __repr__(self) -> str:  # never the token
        return f"Account(sid={self.sid!r}, api_base={self.api_base!r})"

    def url(self, resource: str) -> str:
        """`Messages` or `Calls`: the list resource's URL."""
        return f"{self.api_base.rstrip('/')}/2010-04-01/Accounts/{self.sid}/{resource}.json"


@dataclass(frozen=True)
class Created:
    """What the REST API answered to a create: the resource's sid and status, or an error."""

    http_status: int
    sid: str | None = None
    status: str | None = None
    #: Twilio's error code (https://www.twilio.com/docs/api/errors), when it refused.
    error_code: int | None = None
    error: str | None = None

    @property
    def accepted(self) -> bool:
        return 200 <= self.http_status < 300 and self.sid is not None

    @property
    def retryable(self) -> bool:
        """Whether another try may succeed: rate limits and the provider's own failures."""
        return self.http_status in (408, 429) or self.http_status >= 500


async def create(
    http: httpx.AsyncClient,
    account: Account,
    resource: str,
    form: Mapping[str, str],
    *,
    timeout: float,
) -> Created:
    """Create a Message or a Call. Network failures raise (httpx.HTTPError); a refusal does not.

    At most a few KB of the answer are read: a resource is small, and a broken proxy must not
    hold a page's slot with an endless body."""
    async with http.stream(
        "POST",
        account.url(resource),
        data=dict(form),
        auth=(account.sid, account.token),
        headers={"Accept": "application/json"},
        timeout=timeout,
    ) as answer:
        body = b""
        async for chunk in answer.aiter_bytes():
            body += chunk
            if len(body) > 16_384:
                break
    try:
        parsed: Any = httpx.Response(200, content=body).json()
    except ValueError:
        parsed = None
    data = parsed if isinstance(parsed, dict) else {}
    if 200 <= answer.status_code < 300:
        sid = data.get("sid")
        return Created(
            answer.status_code,
            sid=sid if isinstance(sid, str) else None,
            status=str(data.get("status") or "queued"),
            error="no sid in the answer" if not isinstance(sid, str) else None,
        )
    code = data.get("code")
    return Created(
        answer.status_code,
        error_code=code if isinstance(code, int) else None,
        # Twilio's message names the number it refused: keep only the code and the status.
        error=f"Twilio {answer.status_code}" + (f" error {code}" if isinstance(code, int) else ""),
    )


def public_url(base: str, path: str, query: str = "") -> str:
    """The URL the provider called, as it signed it: the configured public base (scheme, host,
    port and any path prefix of the proxy in front; never the request's Host header, which a
    client chooses), the path, and the query if any."""
    url = base.rstrip("/") + path
    return f"{url}?{query}" if query else url


def webhook_url(public_base: str, request: Request) -> str:
    """The URL Twilio called for `request` (`public_url` of its path and query)."""
    return public_url(public_base, request.url.path, request.url.query)


def signature_valid(
    tokens: Iterable[str | None], url: str, params: FormData | Mapping[str, Any], signature: str
) -> bool:
    """Whether `signature` is Twilio's for this request under one of `tokens` (current, then the
    one being rotated out). No token, or no signature, is never valid."""
    if not signature:
        return False
    return any(
        token and RequestValidator(token).validate(url, params, signature) for token in tokens
    )


def tokens(account: Account | None) -> Sequence[str]:
    """The tokens an inbound request may be signed with, current first."""
    if account is None:
        return ()
    return tuple(t for t in (account.token, account.previous_token) if t)


def e164(value: str, *, region: str | None = None) -> str:
    """`value` as an E.164 number (+ and digits), or ValueError naming the problem (never the
    number: it is PHI). Spaces, dashes and brackets are allowed; without a leading + the
    number is read as one of `region` (ISO 3166 alpha-2), when one is given."""
    if not value.strip().startswith("+") and region is None:
        raise ValueError("a phone number must be in E.164 form: + and the country code")
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a possible phone number for its country code")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class TwilioSettings(BaseSettings):
    """The account, as a mixin of a service's settings (`class XSettings(ServiceSettings,
    TwilioSettings)`); without TWILIO_ACCOUNT_SID nothing is texted."""

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


@dataclass(frozen=True)
class Sent:
    """One text's send: `delivered` (Twilio took it: a sid and a status), `temporary_failure`
    (no answer, a 429 or a 5xx) or `permanent_failure` (a 4xx, with Twilio's error code)."""

    outcome: str
    sid: str | None = None
    status: str | None = None
    http_status: int | None = None
    error_code: int | None = None
    error: str | None = None


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
    """POST one message to Twilio's Messages resource (`create`); never raises for the
    provider's answer nor for the network."""
    form = {"To": to, "From": from_, "Body": body}
    if status_callback:
        form["StatusCallback"] = status_callback
    account = Account(sid=account_sid, token=auth_token, from_number=from_, api_base=api_base)
    try:
        created = await create(http, account, "Messages", form, timeout=timeout)
    except httpx.HTTPError as exc:
        return Sent("temporary_failure", error=f"no answer from the provider: {type(exc).__name__}")
    if created.accepted:
        return Sent("delivered", sid=created.sid, status=created.status, http_status=201)
    return Sent(
        "temporary_failure" if created.retryable else "permanent_failure",
        http_status=created.http_status,
        error_code=created.error_code,
        error=created.error,
    )
