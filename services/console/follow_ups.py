"""Follow-up after the call, for people: the worklist (most overdue first), one follow-up with
its attempts, the person's replies and the enrolment in Caring Contacts, and the forms that
record an attempt, record consent and withdraw it.

Everything goes through intake's API with the signed-in person's credential: intake checks the
permission and the scope again, and audits every read of a note or a reply.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from services.console.i18n import N_, _
from services.console.pages import PAGES
from services.console.upstream import Invalid
from services.console.web import api, api_send, page_route, render

router = APIRouter(route_class=page_route(PAGES))

OUTCOMES = {
    "reached": N_("Reached the person"),
    "no_answer": N_("No answer"),
    "left_message": N_("Left a message"),
    "declined": N_("Declined follow-up"),
    "in_treatment": N_("Already in treatment"),
    "wrong_number": N_("Wrong number"),
}
#: Time zones offered first in the enrolment form (any IANA name may be typed).
TIME_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Mexico_City",
    "Europe/Madrid",
    "Europe/London",
)
LANGUAGES = {"en": N_("English"), "es": N_("Spanish")}


@router.get("/follow-ups")
async def worklist(request: Request) -> Response:
    """Open follow-ups, most overdue first, and the open tasks they left."""
    rows = await api(request, "intake", "/v1/follow-ups", params={"limit": 200})
    tasks = await api(request, "intake", "/v1/follow-up-tasks", params={"limit": 200})
    return render(
        request,
        "follow_ups.html",
        follow_ups=rows,
        tasks=tasks,
        outcome_labels=OUTCOMES,
        title=_("Follow-ups"),
    )


async def _page(
    request: Request,
    follow_up_id: uuid.UUID,
    *,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    follow_up = await api(request, "intake", f"/v1/follow-ups/{follow_up_id}")
    active = next((c for c in follow_up["caring_contacts"] if c["status"] == "active"), None)
    return render(
        request,
        "follow_up.html",
        status_code,
        follow_up=follow_up,
        active=active,
        outcomes=OUTCOMES,
        time_zones=TIME_ZONES,
        languages=LANGUAGES,
        problem=problem,
        title=_("Follow-up"),
    )


@router.get("/follow-ups/{follow_up_id}")
async def follow_up(follow_up_id: uuid.UUID, request: Request) -> Response:
    return await _page(request, follow_up_id)


@router.post("/follow-ups/{follow_up_id}/attempts")
async def record_attempt(
    follow_up_id: uuid.UUID,
    request: Request,
    outcome: Annotated[str, Form(max_length=20)],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    body: dict[str, Any] = {"outcome": outcome}
    if note.strip():
        body["note"] = note.strip()
    try:
        await api_send(
            request, "POST", "intake", f"/v1/follow-ups/{follow_up_id}/attempts", json=body
        )
    except Invalid as exc:
        return await _page(request, follow_up_id, problem=exc.summary, status_code=422)
    return RedirectResponse(f"/follow-ups/{follow_up_id}", status_code=303)


@router.post("/follow-ups/{follow_up_id}/caring-contacts")
async def enrol(
    follow_up_id: uuid.UUID,
    request: Request,
    phone: Annotated[str, Form(max_length=40)],
    time_zone: Annotated[str, Form(max_length=64)],
    language: Annotated[str, Form(max_length=8)],
    consent: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    if consent != "yes":
        return await _page(
            request,
            follow_up_id,
            problem=_("Record consent only when the person has agreed to the messages."),
            status_code=422,
        )
    body = {"channel": "sms", "phone": phone, "time_zone": time_zone, "language": language}
    try:
        await api_send(
            request, "POST", "intake", f"/v1/follow-ups/{follow_up_id}/caring-contacts", json=body
        )
    except Invalid as exc:
        return await _page(request, follow_up_id, problem=exc.summary, status_code=422)
    return RedirectResponse(f"/follow-ups/{follow_up_id}", status_code=303)


@router.post("/follow-ups/{follow_up_id}/caring-contacts/withdraw")
async def withdraw(follow_up_id: uuid.UUID, request: Request) -> Response:
    await api_send(request, "DELETE", "intake", f"/v1/follow-ups/{follow_up_id}/caring-contacts")
    return RedirectResponse(f"/follow-ups/{follow_up_id}", status_code=303)


@router.post("/follow-up-tasks/{task_id}/done")
async def finish_task(
    task_id: uuid.UUID,
    request: Request,
    follow_up_id: Annotated[uuid.UUID, Form()],
) -> Response:
    await api_send(request, "POST", "intake", f"/v1/follow-up-tasks/{task_id}/done")
    return RedirectResponse(f"/follow-ups/{follow_up_id}", status_code=303)
