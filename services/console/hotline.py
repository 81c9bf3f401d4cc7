"""The hotline worker's screens: a screening form per instrument, its result, the safety-plan
editor (the person's own words) and the printable copy.

Every change to a plan is sent with the version the worker's page showed: when a colleague (or
the same worker in another tab) changed the plan meanwhile, intake answers 409 and the editor
says so plainly, with the worker's unsaved words still in their field.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any

from babel import Locale
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from services.console import i18n
from services.console.i18n import _
from services.console.instruments import INSTRUMENTS, FormProblem, answers_from_form
from services.console.pages import PAGES
from services.console.upstream import Conflict, Invalid
from services.console.web import api, api_send, page_route, render

router = APIRouter(route_class=page_route(PAGES))

Text = Annotated[str, Form(max_length=10_000)]


async def recent_screenings(request: Request) -> list[dict[str, Any]]:
    answer = await api(request, "intake", "/v1/screenings", params={"limit": 25})
    return list(answer["screenings"] if isinstance(answer, dict) else answer)


#: The languages offered for the person on the form, each shown in its own name (a tag
#: written by hand goes through the API, which takes any tag CLDR knows).
PERSON_LANGUAGES = ("en", "es", "fr", "pt", "zh", "vi", "ko", "ar", "ru", "ht", "tl")


def _person_languages() -> dict[str, str]:
    return {code: Locale.parse(code).get_display_name(code) or code for code in PERSON_LANGUAGES}


def _form_page(
    request: Request,
    instrument: str,
    *,
    status_code: int = 200,
    problem: str | None = None,
    values: dict[str, str] | None = None,
    problem_fields: list[str] | None = None,
) -> Response:
    return render(
        request,
        "screening_form.html",
        status_code,
        instrument=INSTRUMENTS[instrument],
        instruments=INSTRUMENTS,
        person_languages=_person_languages(),
        values=values or {},
        problem=problem,
        problem_fields=problem_fields or [],
        # One id per form: sending it twice (a double tap, a retry) makes one screening.
        idempotency_key=(values or {}).get("idempotency_key") or secrets.token_urlsafe(16),
        title=_("New %(instrument)s screening") % {"instrument": INSTRUMENTS[instrument].title},
    )


@router.get("/screenings/new")
async def new_screening(request: Request, instrument: str = "cssrs_screener") -> Response:
    if instrument not in INSTRUMENTS:
        instrument = "cssrs_screener"
    return _form_page(request, instrument)


def _strings(form: FormData) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/screenings")
async def submit_screening(request: Request) -> Response:
    form = _strings(await request.form())
    instrument_key = form.get("instrument", "")
    instrument = INSTRUMENTS.get(instrument_key)
    if instrument is None:
        return render(
            request,
            "error.html",
            422,
            title=_("Unknown instrument"),
            message=_("Choose one of the instruments offered."),
        )
    try:
        answers = answers_from_form(instrument, form)
    except FormProblem as problem:
        return _form_page(
            request,
            instrument_key,
            status_code=422,
            problem=_("Answer every question asked: %(fields)s")
            % {"fields": ", ".join(problem.fields)},
            values=form,
            problem_fields=problem.fields,
        )
    body: dict[str, Any] = {
        "subject_id": form.get("subject_id", "").strip(),
        "source": "hotline",
        "instrument": instrument_key,
        "answers": answers,
        "imminent_danger": form.get("imminent_danger") == "true",
        # The person's (not the worker's): their plan is printed in it, and a clinician who
        # speaks it is paged; intake checks both codes.
        "language": form.get("language", "").strip() or i18n.language(),
    }
    if form.get("country", "").strip():
        body["country"] = form["country"].strip()
    name, phone = form.get("name", "").strip(), form.get("phone", "").strip()
    if name or phone:
        body["contact"] = {"name": name or None, "phone": phone or None}
    if form.get("notes", "").strip():
        body["notes"] = form["notes"].strip()
    try:
        created = await api_send(
            request,
            "POST",
            "intake",
            "/v1/screenings",
            json=body,
            headers={
                "Idempotency-Key": form.get("idempotency_key", "")[:100]
                or secrets.token_urlsafe(16)
            },
        )
    except Invalid as exc:
        fields = [str(p.get("field", "")) for p in exc.problems]
        return _form_page(
            request,
            instrument_key,
            status_code=422,
            problem=exc.summary,
            values=form,
            problem_fields=fields,
        )
    return RedirectResponse(f"/cases/{created['id']}", status_code=303)


# --- the safety plan ---------------------------------------------------------------------


async def _plan_page(
    request: Request,
    plan_id: uuid.UUID,
    *,
    status_code: int = 200,
    conflict: str | None = None,
    problem: str | None = None,
    unsaved: dict[str, str] | None = None,
) -> Response:
    plan = await api(request, "intake", f"/v1/safety-plans/{plan_id}")
    return render(
        request,
        "plan.html",
        status_code,
        plan=plan,
        conflict=conflict,
        problem=problem,
        unsaved=unsaved or {},
        title=_("Safety plan"),
    )


async def _change(
    request: Request,
    plan_id: uuid.UUID,
    method: str,
    path: str,
    body: dict[str, Any],
    *,
    unsaved: dict[str, str] | None = None,
    anchor: str = "",
) -> Response:
    """Send one change; back to the editor, or the editor with the conflict or problem."""
    try:
        await api_send(request, method, "intake", f"/v1/safety-plans/{plan_id}{path}", json=body)
    except Conflict as exc:
        if (exc.body.get("error") or "") == "stale_version":
            message = _(
                "This plan was changed (in another tab, or by a colleague) after you opened "
                "it, so your change was NOT saved. The plan below is the latest version: "
                "check it, then make your change again."
            )
        else:
            message = exc.message
        return await _plan_page(
            request, plan_id, status_code=409, conflict=message, unsaved=unsaved
        )
    except Invalid as exc:
        return await _plan_page(
            request, plan_id, status_code=422, problem=exc.summary, unsaved=unsaved
        )
    return RedirectResponse(f"/plans/{plan_id}{anchor}", status_code=303)


@router.get("/plans/{plan_id}")
async def plan_editor(plan_id: uuid.UUID, request: Request) -> Response:
    return await _plan_page(request, plan_id)


@router.get("/plans/{plan_id}/print")
async def plan_print(plan_id: uuid.UUID, request: Request) -> Response:
    """The person's copy, in the person's language (the screening's) whoever prints it, with
    their country's crisis lines as intake lists them; dates in the reader's time zone."""
    plan = await api(request, "intake", f"/v1/safety-plans/{plan_id}")
    with i18n.speaking((plan.get("person") or {}).get("language")):
        return render(request, "plan_print.html", plan=plan, title=_("My safety plan"))


@router.post("/plans/{plan_id}/steps/{step}/entries")
async def add_entry(
    plan_id: uuid.UUID,
    step: str,
    request: Request,
    version: Annotated[int, Form(ge=1)],
    text: Text = "",
) -> Response:
    return await _change(
        request,
        plan_id,
        "POST",
        f"/steps/{step}/entries",
        {"version": version, "text": text},
        unsaved={f"new-{step}": text},
        anchor=f"#step-{step}",
    )


@router.post("/plans/{plan_id}/steps/{step}/entries/{entry_id}")
async def change_entry(
    plan_id: uuid.UUID,
    step: str,
    entry_id: str,
    request: Request,
    version: Annotated[int, Form(ge=1)],
    action: Annotated[str, Form(max_length=10)] = "save",
    text: Text = "",
) -> Response:
    """Save, delete, or move an entry up or down (one form per entry, one button each)."""
    anchor = f"#step-{step}"
    if action == "delete":
        return await _change(
            request,
            plan_id,
            "DELETE",
            f"/steps/{step}/entries/{entry_id}",
            {"version": version},
            anchor=anchor,
        )
    if action in ("up", "down"):
        plan = await api(request, "intake", f"/v1/safety-plans/{plan_id}")
        ids = [e["id"] for s in plan["steps"] if s["key"] == step for e in s["entries"]]
        if entry_id in ids:
            i = ids.index(entry_id)
            j = i - 1 if action == "up" else i + 1
            if 0 <= j < len(ids):
                ids[i], ids[j] = ids[j], ids[i]
        return await _change(
            request,
            plan_id,
            "PUT",
            f"/steps/{step}/order",
            {"version": version, "entry_ids": ids},
            anchor=anchor,
        )
    return await _change(
        request,
        plan_id,
        "PUT",
        f"/steps/{step}/entries/{entry_id}",
        {"version": version, "text": text},
        unsaved={entry_id: text},
        anchor=anchor,
    )


@router.post("/plans/{plan_id}/steps/{step}/not-applicable")
async def not_applicable(
    plan_id: uuid.UUID,
    step: str,
    request: Request,
    version: Annotated[int, Form(ge=1)],
    action: Annotated[str, Form(max_length=10)] = "set",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if action == "clear":
        return await _change(
            request,
            plan_id,
            "DELETE",
            f"/steps/{step}/not-applicable",
            {"version": version},
            anchor=f"#step-{step}",
        )
    return await _change(
        request,
        plan_id,
        "PUT",
        f"/steps/{step}/not-applicable",
        {"version": version, "reason": reason},
        unsaved={f"na-{step}": reason},
        anchor=f"#step-{step}",
    )


@router.post("/plans/{plan_id}/emergency-task")
async def emergency_task(
    plan_id: uuid.UUID,
    request: Request,
    version: Annotated[int, Form(ge=1)],
    status: Annotated[str, Form(max_length=20)] = "completed",
    outcome: Annotated[str, Form(max_length=1000)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    body: dict[str, Any] = {"version": version, "status": status}
    if status == "completed":
        body["outcome"] = outcome
    else:
        body["reason"] = reason
    return await _change(
        request,
        plan_id,
        "PUT",
        "/emergency-task",
        body,
        unsaved={"task-outcome": outcome, "task-reason": reason},
        anchor="#emergency",
    )


@router.post("/plans/{plan_id}/review")
async def review(
    plan_id: uuid.UUID,
    request: Request,
    version: Annotated[int, Form(ge=1)],
    note: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    body: dict[str, Any] = {"version": version}
    if note.strip():
        body["note"] = note
    return await _change(request, plan_id, "POST", "/review", body, unsaved={"review": note})


@router.post("/plans/{plan_id}/complete")
async def complete(
    plan_id: uuid.UUID, request: Request, version: Annotated[int, Form(ge=1)]
) -> Response:
    return await _change(request, plan_id, "POST", "/complete", {"version": version})
