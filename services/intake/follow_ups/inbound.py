"""Twilio's webhooks for the Caring Contacts number: the person's replies (`POST /v1/twilio/sms`)
and the messages' status callbacks (`POST /v1/twilio/status`).

No credential comes with them (the routes are public in the permission table); each is checked
instead against `X-Twilio-Signature` with the official RequestValidator over the public URL
(INTAKE_PUBLIC_URL + the path and query, never the Host header), under the current or the previous
auth token. Anything else is 403, changes nothing, and leaves an audit entry of the refusal (no
number, no body).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from services.intake.follow_ups import replies
from services.intake.follow_ups.models import CaringMessage
from services.intake.permissions import ROUTES
from shared.auth import guarded
from shared.db import transaction
from shared.errors import Forbidden
from shared.twilio import SIGNATURE_HEADER, public_url, signature_valid

log = logging.getLogger(__name__)

#: Twilio's webhooks are not part of the API clients call: they are left out of the OpenAPI
#: (which describes bearer-authenticated operations) and documented in docs/api.md.
router = APIRouter(prefix="/v1/twilio", route_class=guarded(ROUTES), include_in_schema=False)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
_MAX_FIELD = 2000


async def _verified(request: Request, action: str) -> dict[str, str]:
    """The form, if Twilio signed it for this URL; otherwise the refusal is audited and 403."""
    runtime = request.app.state.runtime
    settings = runtime.settings
    form = await request.form()
    params = {k: str(v)[:_MAX_FIELD] for k, v in form.multi_items() if isinstance(v, str)}
    url = public_url(settings.public_url, request.url.path, request.url.query)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if signature_valid(settings.twilio_tokens(), url, params, signature):
        return params
    # The gate records the refusal in the audit trail (at most AUDIT_REFUSAL_LIMIT per
    # address), and it counts as a bad credential from that address (shared/auth/guard.py).
    runtime.gate.limits.failed_auth(request.client.host if request.client else "-")
    log.warning("%s: refused a request without a valid Twilio signature", action)
    raise Forbidden("the request carries no valid Twilio signature")


def _twiml() -> Response:
    return Response(EMPTY_TWIML, media_type="application/xml")


@router.post("/sms", responses={403: {"description": "no valid X-Twilio-Signature"}})
async def twilio_sms(request: Request) -> Response:
    """A text to the caring number: stored, matched to the person's enrolment, acted on
    (replies.py). Answered with empty TwiML (Twilio's own opt-out reply covers STOP)."""
    params = await _verified(request, "twilio_sms")
    sid, number = params.get("MessageSid", ""), params.get("From", "")
    if not sid or not number:
        return _twiml()
    async with transaction(request.app.state.runtime.sessions) as session:
        await replies.receive(session, provider_sid=sid, number=number, body=params.get("Body", ""))
    return _twiml()


@router.post("/status", responses={403: {"description": "no valid X-Twilio-Signature"}})
async def twilio_status(request: Request) -> Response:
    """A caring message's status callback: its provider status (sent, delivered, undelivered…)."""
    params = await _verified(request, "twilio_status")
    sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
    if sid and status:
        async with transaction(request.app.state.runtime.sessions) as session:
            await _record_status(session, sid, status, params.get("ErrorCode"))
    return Response(status_code=204)


async def _record_status(session: Any, sid: str, status: str, error: str | None) -> None:
    message = await session.scalar(
        select(CaringMessage).where(CaringMessage.provider_sid == sid).with_for_update()
    )
    if message is None:
        return
    # A callback may arrive after a later one (sent after delivered): the final one stays.
    if message.provider_status in ("delivered", "undelivered", "failed") and status == "sent":
        return
    message.provider_status = status[:32]
    if error:
        message.last_error = f"twilio error {error[:10]}"
