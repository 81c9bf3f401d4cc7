"""The provider's requests to the application: form-encoded, signed as Twilio signs them.

The signature is computed by the official `twilio` package (RequestValidator), never by hand:
the point of this provider is that what validates here validates against Twilio, and the
package is what notify will validate with. For a POST, Twilio signs the full URL plus the
parameters; for a GET the parameters are in the URL's query and the signed params are empty.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from deploy.phones.store import Callback

log = logging.getLogger(__name__)

USER_AGENT = "TwilioProxy/1.1"


class Webhooks:
    """Posts signed requests and records each one with its answer."""

    def __init__(self, auth_token: str, client: httpx.AsyncClient) -> None:
        self._validator = RequestValidator(auth_token)
        self._client = client

    def signature(self, url: str, params: dict[str, str]) -> str:
        return str(self._validator.compute_signature(url, params))

    async def send(
        self, kind: str, url: str, params: dict[str, str], method: str = "POST"
    ) -> Callback:
        """Make the request; a failure (refused, timeout) is recorded, never raised: Twilio
        carries on (or ends the call) whatever the application answers."""
        method = method.upper()
        if method == "GET":
            separator = "&" if "?" in url else "?"
            target = f"{url}{separator}{urlencode(params)}" if params else url
            signed, body = target, None
        else:
            target, signed, body = url, url, params
        record = Callback(kind, target, method, dict(params))
        headers = {
            "X-Twilio-Signature": self.signature(signed, body or {}),
            "User-Agent": USER_AGENT,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        try:
            response = await self._client.request(method, target, data=body, headers=headers)
        except httpx.HTTPError as exc:
            record.error = f"{type(exc).__name__}: {exc}"
            log.warning("%s webhook failed: %s", kind, type(exc).__name__)
            return record
        record.status_code = response.status_code
        record.body = response.text
        if not response.is_success:
            record.error = f"HTTP {response.status_code}"
            log.warning("%s webhook answered %s", kind, response.status_code)
        return record
