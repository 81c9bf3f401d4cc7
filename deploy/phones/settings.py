"""The local provider's settings, all from `PHONES_*` variables.

Why the credentials have no default: the provider signs every webhook with the auth token, and
notify trusts what validates; a well-known default token would let anything on the machine
forge an acknowledgement. `make run` generates both and keeps them in its secrets folder.
"""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class PhonesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHONES_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8005
    #: The account the REST API accepts (HTTP basic user) and the webhooks carry.
    account_sid: str
    #: The account's auth token: the HTTP basic password, and the key of X-Twilio-Signature.
    auth_token: SecretStr
    #: The number's "A message comes in" webhook: where replies typed on a phone are posted.
    sms_url: str | None = None
    #: The provider's own number: where a phone's reply goes when nothing reached it yet.
    number: str = "+15555550100"
    #: More numbers of the account, each with its own "A message comes in" webhook:
    #: `+15555550101=http://…/v1/twilio/sms,+15555550102=…` (a number with no `=url` has none).
    #: PHONES_NUMBER keeps PHONES_SMS_URL unless it is listed here too.
    numbers: str = ""
    #: Texts and calls kept per phone (the oldest go first), and phones kept in all.
    max_items: int = Field(50, ge=1)
    max_phones: int = Field(200, ge=1)
    #: Twilio's webhook timeout: a callback not answered in this time counts as failed.
    webhook_timeout_seconds: float = Field(15.0, gt=0)
    log_level: str = "INFO"

    @field_validator("account_sid")
    @classmethod
    def _account_sid(cls, value: str) -> str:
        """Twilio's clients check the shape of what they are given; so does this."""
        if not _ACCOUNT_SID.fullmatch(value):
            raise ValueError("PHONES_ACCOUNT_SID must be AC followed by 32 lowercase hex digits")
        return value

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        if not _E164.fullmatch(value):
            raise ValueError("PHONES_NUMBER must be an E.164 number (+ and 7 to 15 digits)")
        return value

    @field_validator("numbers")
    @classmethod
    def _numbers(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",")):
            if not entry:
                continue
            number, _, url = entry.partition("=")
            if not _E164.fullmatch(number.strip()):
                raise ValueError("PHONES_NUMBERS: each entry is an E.164 number, then =<url>")
            if url and not re.match(r"https?://[^/]+", url.strip()):
                raise ValueError("PHONES_NUMBERS: a number's webhook must be an http(s) URL")
        return value

    @property
    def sms_urls(self) -> dict[str, str | None]:
        """Every number of the account and its "A message comes in" webhook (None: none)."""
        urls: dict[str, str | None] = {self.number: self.sms_url}
        for entry in (e.strip() for e in self.numbers.split(",")):
            if entry:
                number, _, url = entry.partition("=")
                urls[number.strip()] = url.strip() or None
        return urls

    @field_validator("sms_url")
    @classmethod
    def _sms_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.match(r"https?://[^/]+", value):
            raise ValueError("PHONES_SMS_URL must be an http(s) URL")
        return value


def is_e164(number: str) -> bool:
    """Whether `number` is what Twilio accepts as a phone number (E.164)."""
    return bool(_E164.fullmatch(number))
