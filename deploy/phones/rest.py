"""Twilio's REST API, the part notify uses: Messages and Calls under
/2010-04-01/Accounts/{AccountSid}/, form-encoded, HTTP basic auth with the account sid and
auth token, answers and errors in Twilio's JSON.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from deploy.phones import errors
from deploy.phones.errors import TwilioError
from deploy.phones.messaging import Messaging
from deploy.phones.runtime import Runtime
from deploy.phones.voice import Voice

BASE = "/2010-04-01/Accounts/{account_sid}"

router = APIRouter()


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def authenticated(request: Request, account_sid: str) -> str:
    """The account of the request: its basic credentials must be the configured ones, and the
    path's account theirs (Twilio: 20003 otherwise, 20404 for another account's path)."""
    settings = _runtime(request).settings
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise errors.authenticate() from None
    token = settings.auth_token.get_secret_value()
    good_user = hmac.compare_digest(user.encode(), settings.account_sid.encode())
    good_token = hmac.compare_digest(password.encode(), token.encode())
    if scheme.lower() != "basic" or not (good_user and good_token):
        raise errors.authenticate()
    if account_sid != settings.account_sid:
        raise errors.not_found(request.url.path)
    return account_sid


Account = Annotated[str, Depends(authenticated)]


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    events = [value for value in form.getlist("StatusCallbackEvent") if isinstance(value, str)]
    return fields, events


@router.post(BASE + "/Messages.json", status_code=201)
async def create_message(request: Request, account: Account) -> JSONResponse:
    fields, _ = await _form(request)
    messaging: Messaging = request.app.state.messaging
    message = messaging.create(account, fields)
    await messaging.report_first(message)
    return JSONResponse(message.resource(), status_code=201)


@router.get(BASE + "/Messages/{sid}.json")
async def get_message(request: Request, account: Account, sid: str) -> dict[str, Any]:
    message = _runtime(request).store.messages.get(sid)
    if message is None:
        raise errors.not_found(request.url.path)
    return message.resource()


@router.post(BASE + "/Calls.json", status_code=201)
async def create_call(request: Request, account: Account) -> JSONResponse:
    fields, events = await _form(request)
    call = _voice(request).create(account, fields, events)
    return JSONResponse(call.resource(), status_code=201)


@router.get(BASE + "/Calls/{sid}.json")
async def get_call(request: Request, account: Account, sid: str) -> dict[str, Any]:
    call = _runtime(request).store.calls.get(sid)
    if call is None:
        raise errors.not_found(request.url.path)
    return call.resource()


@router.post(BASE + "/Calls/{sid}.json")
async def update_call(request: Request, account: Account, sid: str) -> dict[str, Any]:
    """Ending a call (Status=canceled or completed), as notify will once a page is
    acknowledged some other way; redirecting a live call is not supported."""
    fields, _ = await _form(request)
    if sid not in _runtime(request).store.calls:
        raise errors.not_found(request.url.path)
    status = fields.get("Status", "")
    if status not in ("canceled", "completed"):
        raise TwilioError(400, 21220, "Invalid call state: Status must be canceled or completed")
    return (await _voice(request).cancel(sid, status)).resource()


def _voice(request: Request) -> Voice:
    voice: Voice = request.app.state.voice
    return voice
