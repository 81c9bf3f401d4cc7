"""Twilio's webhooks on notify: a reply to a text, a call's TwiML, a key pressed in a call, and
the status reports on texts and calls.

These routes take no credential: each request must carry Twilio's signature
(`X-Twilio-Signature`, checked by Twilio's own validator over NOTIFY_PUBLIC_URL with the path
and query, and the form, under TWILIO_AUTH_TOKEN or TWILIO_AUTH_TOKEN_PREVIOUS). A missing or
wrong one is 403, changes nothing, counts as a bad credential from that address (429 past
AUTH_FAILURE_LIMIT) and is in the audit trail. Nothing a phone sends is echoed or logged.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import FormData

from services.notify.alerts.models import Alert
from services.notify.permissions import ROUTES
from services.notify.phones.service import (
    Report,
    apply_report,
    call_document,
    handle_reply,
    key_pressed,
)
from services.notify.phones.texts import message
from services.notify.settings import NotifySettings
from shared import audit
from shared.auth import guarded
from shared.db import transaction
from shared.errors import Forbidden, Unprocessable
from shared.http import Sessions
from shared.twilio import SIGNATURE_HEADER, signature_valid, tokens, webhook_url

#: Twilio's webhooks are not part of the API clients call: they are left out of the OpenAPI
#: (which describes bearer-authenticated operations) and documented in docs/on-call.md.
router = APIRouter(prefix="/v1/twilio", route_class=guarded(ROUTES), include_in_schema=False)

_XML = "application/xml"
_SIGNED: dict[int | str, dict[str, Any]] = {403: {"description": "no valid X-Twilio-Signature"}}


async def _signed_form(request: Request) -> FormData:
    """The request's form, once its Twilio signature is checked (403 otherwise)."""
    settings: NotifySettings = request.app.state.runtime.settings
    form = await request.form()
    url = webhook_url(settings.public_url, request)
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature_valid(tokens(settings.twilio), url, form, signature):
        limits = request.app.state.runtime.gate.limits
        limits.failed_auth(request.client.host if request.client else "-")
        raise Forbidden("the request carries no valid Twilio signature")
    return form


def _page_of(request: Request) -> tuple[uuid.UUID, int]:
    """The page and attempt a callback URL names (we made it; Twilio signed it back)."""
    try:
        return uuid.UUID(request.query_params["d"]), int(request.query_params["n"])
    except (KeyError, ValueError):
        raise Unprocessable("the callback URL names no page (d) and attempt (n)") from None


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _acknowledged(request: Request, alerts: list[Alert], clinician: str | None) -> None:
    """The trail names the clinician whose phone acknowledged; the metrics time it."""
    if not alerts:
        return
    audit.annotate(actor=clinician or "phone", role="clinician", resource=f"alert/{alerts[0].id}")
    for alert in alerts:
        if alert.acknowledged_at is not None:
            since = alert.assessed_at or alert.created_at
            request.app.state.paging.assessment_to_ack.labels(risk_level=alert.risk_level).observe(
                (alert.acknowledged_at - since).total_seconds()
            )


@router.post("/sms", response_class=Response, responses=_SIGNED)
async def sms_reply(request: Request, sessions: Sessions) -> Response:
    """A text to our number: the alert's code, or 1 / A / ACK for the newest open alert paged
    to that phone, acknowledges (ACK ALL: every one); STOP and START opt the phone's texts out
    and in. The answer (TwiML) says what was done."""
    form = await _signed_form(request)
    async with transaction(sessions) as session:
        reply = await handle_reply(session, number=_field(form, "From"), body=_field(form, "Body"))
        _acknowledged(request, reply.acknowledged, reply.clinician)
    return Response(message(reply.text), media_type=_XML)


@router.post("/voice", response_class=Response, responses=_SIGNED)
async def voice(request: Request, sessions: Sessions) -> Response:
    """A page's call was answered: its TwiML (the level, then "press 1", twice)."""
    form = await _signed_form(request)
    delivery_id, attempt = _page_of(request)
    async with transaction(sessions) as session:
        document = await call_document(
            session,
            delivery_id=delivery_id,
            attempt=attempt,
            answered_by=_field(form, "AnsweredBy") or None,
            settings=request.app.state.runtime.settings,
        )
    return Response(document, media_type=_XML)


@router.post("/voice/gather", response_class=Response, responses=_SIGNED)
async def voice_gather(request: Request, sessions: Sessions) -> Response:
    """A key pressed in a page's call: `Digits=1` acknowledges, nothing else does."""
    form = await _signed_form(request)
    delivery_id, attempt = _page_of(request)
    async with transaction(sessions) as session:
        pressed = await key_pressed(
            session,
            delivery_id=delivery_id,
            attempt=attempt,
            call_sid=_field(form, "CallSid"),
            digits=_field(form, "Digits"),
            settings=request.app.state.runtime.settings,
        )
        _acknowledged(
            request, [pressed.acknowledged] if pressed.acknowledged else [], pressed.clinician
        )
    return Response(pressed.document, media_type=_XML)


@router.post("/status", status_code=204, response_class=Response, responses=_SIGNED)
async def status(request: Request, sessions: Sessions) -> Response:
    """The provider's report on a text (`MessageStatus`) or a call (`CallStatus`)."""
    form = await _signed_form(request)
    delivery_id, attempt = _page_of(request)
    sid = _field(form, "MessageSid") or _field(form, "SmsSid") or _field(form, "CallSid")
    state = _field(form, "MessageStatus") or _field(form, "SmsStatus") or _field(form, "CallStatus")
    if not sid or not state:
        raise Unprocessable(
            "a status report needs MessageSid and MessageStatus, or CallSid and CallStatus"
        )
    code = _field(form, "ErrorCode")
    report = Report(
        delivery_id=delivery_id,
        attempt=attempt,
        sid=sid[:64],
        status=state[:32],
        error_code=int(code) if code.isdigit() else None,
        answered_by=_field(form, "AnsweredBy") or None,
    )
    settings = request.app.state.runtime.settings
    async with transaction(sessions) as session:
        recorded = await apply_report(session, report, settings=settings)
        audit.about(f"page/{delivery_id}")
    if recorded is not None and recorded.first_delivery_after is not None:
        paging: Any = request.app.state.paging
        paging.assessment_to_first_delivery.labels(risk_level=recorded.risk_level).observe(
            recorded.first_delivery_after
        )
    return Response(status_code=204)
