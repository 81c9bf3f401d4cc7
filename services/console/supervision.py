"""The supervisor's and the admin's screens: coverage for the next 7 days with its holes,
overrides from the calendar, escalation policies, what went wrong in the last 24 hours, the
audit trail, and API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from services.console.i18n import _
from services.console.pages import PAGES
from services.console.upstream import Invalid
from services.console.web import api, api_send, page_route, render

router = APIRouter(route_class=page_route(PAGES))

DAYS = 7
ROLES = ("hotline", "ehr", "clinician", "supervisor", "admin")


@dataclass(frozen=True)
class Cell:
    """One hour of one schedule in the calendar."""

    start: datetime
    clinician: str | None
    source: str | None
    #: Nobody covers (part of) this hour: until when, for the override form.
    gap_until: datetime | None = None
    #: Already over: shown, not offered for an override.
    past: bool = False

    @property
    def gap(self) -> bool:
        return self.gap_until is not None


def hour_grid(
    segments: list[dict[str, Any]], start: datetime, days: int, now: datetime
) -> list[list[Cell]]:
    """Rows of 24 hourly cells per day from `start` (a midnight); a cell names who covers the
    start of its hour, and is a gap when nobody covers some part of it."""
    spans = [
        (datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]), s) for s in segments
    ]
    rows = []
    for day in range(days):
        row = []
        for hour in range(24):
            at = start + timedelta(days=day, hours=hour)
            past = at + timedelta(hours=1) <= now
            holes = [
                b
                for a, b, s in spans
                if s["clinician_id"] is None and a < at + timedelta(hours=1) and b > at
            ]
            first = next((s for a, b, s in spans if a <= at < b), None)
            row.append(
                Cell(
                    at,
                    None if first is None else first["clinician"],
                    None if first is None else first["source"],
                    gap_until=max(holes) if holes and not past else None,
                    past=past,
                )
            )
        rows.append(row)
    return rows


def _hour(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@router.get("/oncall")
async def coverage(
    request: Request,
    schedule: Annotated[uuid.UUID | None, Query()] = None,
    start: Annotated[str | None, Query(max_length=40)] = None,
    end: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """Who is on call now and for the next 7 days; a gap cell links to the override form."""
    return await _coverage_page(
        request, prefill_schedule=schedule, prefill_start=start, prefill_end=end
    )


async def _coverage_page(
    request: Request,
    *,
    prefill_schedule: uuid.UUID | None = None,
    prefill_start: str | None = None,
    prefill_end: str | None = None,
    problem: str | None = None,
    clinician_problem: str | None = None,
    status_code: int = 200,
) -> Response:
    now = datetime.now(UTC)
    start = _hour(now).replace(hour=0)
    window = await api(
        request,
        "notify",
        "/v1/oncall/coverage",
        params={"from": start.isoformat(), "to": (start + timedelta(days=DAYS)).isoformat()},
    )
    oncall = await api(request, "notify", "/v1/oncall")
    clinicians = await api(request, "notify", "/v1/clinicians", params={"limit": 500})
    schedules = [
        {
            **s,
            "grid": hour_grid(s["segments"], start, DAYS, now),
            "gaps": sum(
                1
                for seg in s["segments"]
                if seg["clinician_id"] is None and datetime.fromisoformat(seg["end"]) > now
            ),
        }
        for s in window["schedules"]
    ]
    return render(
        request,
        "coverage.html",
        status_code,
        schedules=schedules,
        oncall=oncall["oncall"],
        clinicians=clinicians,
        opted_out=[
            {"clinician": c["name"], "since": m["opted_out_at"]}
            for c in clinicians
            for m in c.get("contact_methods", [])
            if m.get("opted_out_at")
        ],
        start=start,
        days=DAYS,
        prefill_schedule=prefill_schedule,
        prefill_start=prefill_start,
        prefill_end=prefill_end,
        problem=problem,
        clinician_problem=clinician_problem,
        title=_("On call"),
    )


def _aware(value: str, field: str) -> datetime:
    """A datetime-local field's value, read as UTC (the form says so)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise Invalid(_("%(field)s: not a date and time") % {"field": field}) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post("/oncall/{schedule_id}/overrides")
async def add_override(
    schedule_id: uuid.UUID,
    request: Request,
    clinician_id: Annotated[str, Form(max_length=40)],
    start: Annotated[str, Form(max_length=40)],
    end: Annotated[str, Form(max_length=40)],
) -> Response:
    try:
        body = {
            "clinician_id": clinician_id,
            "start": _aware(start, "start").isoformat(),
            "end": _aware(end, "end").isoformat(),
        }
        await api_send(
            request, "POST", "notify", f"/v1/schedules/{schedule_id}/overrides", json=body
        )
    except Invalid as exc:
        return await _coverage_page(
            request,
            prefill_schedule=schedule_id,
            prefill_start=start,
            prefill_end=end,
            problem=exc.summary,
            status_code=422,
        )
    return RedirectResponse("/oncall#coverage", status_code=303)


@router.post("/clinicians/{clinician_id}/languages")
async def set_languages(
    clinician_id: uuid.UUID,
    request: Request,
    languages: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """A clinician's languages, as BCP 47 tags separated by commas or spaces (notify checks
    each one)."""
    tags = [t for t in languages.replace(",", " ").split() if t]
    try:
        await api_send(
            request,
            "PUT",
            "notify",
            f"/v1/clinicians/{clinician_id}/languages",
            json={"languages": tags},
        )
    except Invalid as exc:
        return await _coverage_page(request, clinician_problem=exc.summary, status_code=422)
    return RedirectResponse("/oncall#clinicians", status_code=303)


@router.get("/policies")
async def policies(request: Request) -> Response:
    found = await api(request, "notify", "/v1/policies", params={"limit": 500})
    schedules = await api(request, "notify", "/v1/schedules", params={"limit": 500})
    clinicians = await api(request, "notify", "/v1/clinicians", params={"limit": 500})
    names = {s["id"]: s["name"] for s in schedules} | {c["id"]: c["name"] for c in clinicians}
    return render(
        request, "policies.html", policies=found, names=names, title=_("Escalation policies")
    )


@router.get("/oversight")
async def oversight(request: Request) -> Response:
    """Overdue safety plans; alerts that escalated or failed in the last 24 hours."""
    since = (datetime.now(UTC) - timedelta(hours=24)).isoformat()
    plans = await api(
        request, "intake", "/v1/safety-plans", params={"overdue": "true", "limit": 200}
    )
    escalated = await api(
        request, "notify", "/v1/alerts", params={"escalated": "true", "since": since, "limit": 200}
    )
    failed = await api(
        request, "notify", "/v1/alerts", params={"status": "failed", "since": since, "limit": 200}
    )
    alerts = {a["id"]: a for a in _items(escalated, "alerts") + _items(failed, "alerts")}
    return render(
        request,
        "oversight.html",
        plans=_items(plans, "plans"),
        alerts=list(alerts.values()),
        title=_("Oversight"),
    )


def _items(answer: Any, key: str) -> list[dict[str, Any]]:
    return list(answer.get(key, []) if isinstance(answer, dict) else answer)


@router.get("/audit")
async def audit(
    request: Request,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    resource: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The trail, filtered by person (credential name) or case (e.g. screening/<id>)."""
    params: dict[str, str | int] = {"limit": 100}
    for name, value in (("actor", actor), ("resource", resource), ("cursor", cursor)):
        if value:
            params[name] = value.strip()
    answer = await api_send(request, "GET", "intake", "/v1/audit", params=params)
    return render(
        request,
        "audit.html",
        entries=answer,
        actor=actor or "",
        resource=resource or "",
        title=_("Audit trail"),
    )


@router.get("/keys")
async def keys(request: Request) -> Response:
    return await _keys_page(request)


async def _keys_page(
    request: Request,
    *,
    issued: dict[str, Any] | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    found = await api(request, "intake", "/v1/api-keys", params={"limit": 500})
    return render(
        request,
        "keys.html",
        status_code,
        keys=found,
        issued=issued,
        problem=problem,
        roles=ROLES,
        title=_("API keys"),
    )


@router.post("/keys")
async def issue_key(
    request: Request,
    name: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form(max_length=20)],
    identifier_systems: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    body: dict[str, Any] = {"name": name.strip(), "role": role}
    systems = [s.strip() for s in identifier_systems.split(",") if s.strip()]
    if systems:
        body["identifier_systems"] = systems
    try:
        issued = await api_send(request, "POST", "intake", "/v1/api-keys", json=body)
    except Invalid as exc:
        return await _keys_page(request, problem=exc.summary, status_code=422)
    # Shown once, on this answer only (no-store): the console keeps no copy.
    return await _keys_page(request, issued=issued, status_code=201)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: uuid.UUID, request: Request) -> Response:
    await api_send(request, "DELETE", "intake", f"/v1/api-keys/{key_id}")
    return RedirectResponse("/keys", status_code=303)
