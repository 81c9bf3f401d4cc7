"""The test API under /_local/: what the phones did and got, and the person's side of each
text and call, as JSON (see the package docstring for the list).

Not Twilio's: it is the hand on the phone. No credentials, like the pages: the provider
listens on loopback, for one developer's machine or one test session.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from deploy.phones.messaging import Messaging
from deploy.phones.runtime import Runtime
from deploy.phones.settings import is_e164
from deploy.phones.store import Call, Phone
from deploy.phones.voice import CallError, Voice


def same_origin(request: Request) -> None:
    """Refuse a browser's cross-site request: the provider signs what a phone sends, and
    notify trusts that signature, so another site open in the developer's browser must not
    be able to post a reply ("1") or press a key through it. Browsers send Origin on every
    cross-site POST; tests and curl send none."""
    origin = request.headers.get("Origin")
    if request.method in ("GET", "HEAD") or origin is None:
        return
    if urlsplit(origin).netloc != request.headers.get("Host"):
        raise HTTPException(403, "cross-site request refused")


router = APIRouter(prefix="/_local", dependencies=[Depends(same_origin)])


class Reply(BaseModel):
    Body: str = Field(min_length=1, max_length=1600)
    #: The provider number texted; by default the one that last reached the phone.
    To: str | None = None


class Press(BaseModel):
    Digits: str = Field(pattern=r"^[0-9*#]{1,20}$")


class Reachable(BaseModel):
    unreachable: bool


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def phone_json(phone: Phone) -> dict[str, Any]:
    return {
        "number": phone.number,
        "unreachable": phone.unreachable,
        "opted_out_from": sorted(phone.opted_out),
        "messages": [m.as_json() for m in reversed(phone.messages)],
        "calls": [c.as_json() for c in reversed(phone.calls)],
    }


@router.get("/phones")
async def phones(request: Request) -> dict[str, Any]:
    return {"phones": list(_runtime(request).store.phones)}


@router.get("/phones/{number}")
async def phone(request: Request, number: str) -> dict[str, Any]:
    found = _runtime(request).store.phones.get(number)
    if found is None:
        raise HTTPException(404, "no such phone")
    return phone_json(found)


def e164(number: str) -> str:
    """A phone is an E.164 number; anything else in the path is no phone of this provider."""
    if not is_e164(number):
        raise HTTPException(404, "no such phone: phones are E.164 numbers")
    return number


@router.post("/phones/{number}/reply")
async def reply(request: Request, number: str, body: Reply) -> dict[str, Any]:
    e164(number)
    messaging: Messaging = request.app.state.messaging
    message = await messaging.reply(number, body.Body, body.To)
    return message.as_json()


@router.post("/phones/{number}/unreachable")
async def unreachable(request: Request, number: str, body: Reachable) -> dict[str, Any]:
    e164(number)
    found = _runtime(request).store.phone(number)
    found.unreachable = body.unreachable
    return phone_json(found)


class ReportsFirst(BaseModel):
    reports_first: bool


@router.post("/phones/{number}/reports-first")
async def reports_first(request: Request, number: str, body: ReportsFirst) -> dict[str, Any]:
    """Texts to this phone are reported on before the send is answered (a race made certain)."""
    e164(number)
    found = _runtime(request).store.phone(number)
    found.reports_first = body.reports_first
    return phone_json(found)


@router.get("/calls/{sid}")
async def call(request: Request, sid: str) -> dict[str, Any]:
    found = _runtime(request).store.calls.get(sid)
    if found is None:
        raise HTTPException(404, "no such call")
    return found.as_json()


@router.post("/calls/{sid}/{action}")
async def act(request: Request, sid: str, action: str, body: Press | None = None) -> dict[str, Any]:
    """answer, machine, press ({"Digits": "1"}), silence, hangup, no-answer, busy, fail."""
    voice: Voice = request.app.state.voice
    if action not in ACTIONS:
        raise HTTPException(404, f"no such action; one of {', '.join(ACTIONS)}")
    try:
        done = await perform(voice, sid, action, body.Digits if body else None)
    except KeyError:
        raise HTTPException(404, "no such call") from None
    except CallError as exc:
        raise HTTPException(409, str(exc)) from None
    return done.as_json()


ACTIONS = ("answer", "machine", "press", "silence", "hangup", "no-answer", "busy", "fail")


async def perform(voice: Voice, sid: str, action: str, digits: str | None) -> Call:
    """One of the person's actions on a call (shared by the test API and the pages)."""
    if action == "answer":
        return await voice.answer(sid)
    if action == "machine":
        return await voice.answer(sid, machine=True)
    if action == "press":
        if not digits:
            raise CallError("press needs Digits")
        return await voice.press(sid, digits)
    if action == "silence":
        return await voice.silence(sid)
    if action == "hangup":
        return await voice.hangup(sid)
    if action in ("no-answer", "busy"):
        return await voice.unanswered(sid, action)
    if action == "fail":
        return await voice.unanswered(sid, "failed")
    raise KeyError(action)
