"""The on-call clinician's screens: the open alerts, live; a case on one screen; acknowledge
and resolve.

A case page reads the case view with contact details from intake, so every opening of it is an
audited read of the person's record (intake's trail names the clinician), like an API read.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from services.console.hotline import recent_screenings
from services.console.i18n import N_, _, label, ngettext
from services.console.instruments import INSTRUMENTS, answered
from services.console.pages import PAGES
from services.console.upstream import Conflict, Missing, UpstreamError
from services.console.web import api, api_send, console_of, may, page_route, render, user_of
from shared.auth.roles import Permission

router = APIRouter(route_class=page_route(PAGES))

#: Most urgent first, as notify orders them.
LEVELS = ("imminent", "high", "moderate", "low", "none")
#: What each level starts (docs/clinical-rules.md, "What each level starts").
NEXT_STEPS = {
    "imminent": N_(
        "Imminent risk: do not leave the person alone. The on-call clinician is being "
        "paged now for a STAT safety evaluation, and a safety plan with emergency coordination "
        "has been opened."
    ),
    "high": N_(
        "High risk: the on-call clinician is being paged for a suicide safety assessment "
        "before the person leaves care, and a safety plan has been opened."
    ),
    "moderate": N_(
        "Moderate risk: the on-call clinician is being paged, and a safety plan has been "
        "opened to build with the person."
    ),
    "low": N_("Low risk: no page. Offer resources and follow up as your protocol says."),
    "none": N_(
        "No suicide risk found by this instrument. Use your judgement: a screen is not a "
        "full assessment."
    ),
}


def next_steps(level: str) -> str:
    return _(NEXT_STEPS[level]) if level in NEXT_STEPS else ""


async def open_alerts(request: Request) -> list[dict[str, Any]]:
    answer = await api(request, "notify", "/v1/alerts", params={"open": "true", "limit": 100})
    return list(answer["alerts"] if isinstance(answer, dict) else answer)


def alerts_summary(alerts: list[dict[str, Any]]) -> str:
    """What the page's status line says of the list (and a screen reader, when it changes)."""
    if not alerts:
        return _("No open alerts.")
    top = alerts[0]
    level = label(top["risk_level"])
    if top.get("escalation_level"):
        return ngettext(
            "%(num)d open alert, the most urgent at %(level)s risk, escalation step %(step)s.",
            "%(num)d open alerts, the most urgent at %(level)s risk, escalation step %(step)s.",
            len(alerts),
        ) % {"num": len(alerts), "level": level, "step": top["escalation_level"]}
    return ngettext(
        "%(num)d open alert, the most urgent at %(level)s risk.",
        "%(num)d open alerts, the most urgent at %(level)s risk.",
        len(alerts),
    ) % {"num": len(alerts), "level": level}


@router.get("/")
async def home(request: Request) -> Response:
    """The signed-in person's work: open alerts for clinicians, recent screenings for hotline."""
    user = user_of(request)
    if may(user.role, Permission.ALERTS_READ):
        alerts = await open_alerts(request)
        return render(
            request,
            "alerts.html",
            alerts=alerts,
            summary=alerts_summary(alerts),
            title=_("Open alerts"),
            live_seconds=console_of(request).settings.live_seconds,
        )
    if may(user.role, Permission.SCREENINGS_SUBMIT):
        screenings = await recent_screenings(request)
        return render(
            request,
            "hotline_home.html",
            screenings=screenings,
            title=_("Screenings"),
            instruments=INSTRUMENTS,
        )
    return render(
        request,
        "error.html",
        title=_("Nothing here"),
        message=_("This role has no screens in the console."),
    )


@router.get("/alerts/live")
async def alerts_live(request: Request) -> Response:
    """The open-alerts list alone, for the page's live refresh (it does not extend the
    session: a screen left open still logs off)."""
    alerts = await open_alerts(request)
    return render(request, "_alerts.html", alerts=alerts, summary=alerts_summary(alerts))


@router.get("/alerts/{alert_id}")
async def alert(alert_id: uuid.UUID, request: Request) -> Response:
    """Where a page's link leads after sign-in: the alert's case."""
    found = await api(request, "notify", f"/v1/alerts/{alert_id}")
    return RedirectResponse(f"/cases/{found['screening_id']}#alert-{alert_id}", status_code=303)


async def _act(request: Request, alert_id: uuid.UUID, action: str) -> Response:
    found = await api(request, "notify", f"/v1/alerts/{alert_id}")
    with contextlib.suppress(Conflict):  # already done by a colleague: the case says by whom
        await api_send(request, "POST", "notify", f"/v1/alerts/{alert_id}/{action}")
    return RedirectResponse(f"/cases/{found['screening_id']}", status_code=303)


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(alert_id: uuid.UUID, request: Request) -> Response:
    return await _act(request, alert_id, "ack")


@router.post("/alerts/{alert_id}/resolve")
async def resolve(alert_id: uuid.UUID, request: Request) -> Response:
    return await _act(request, alert_id, "resolve")


async def _alert_details(request: Request, alert_ids: list[str]) -> list[dict[str, Any]]:
    """Each alert of the case with its attempts (never their target addresses)."""
    if not may(user_of(request).role, Permission.ALERTS_READ):
        return []

    async def one(alert_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await api(request, "notify", f"/v1/alerts/{alert_id}")
        except Missing:
            return None
        for attempt in found.get("attempts", []):
            attempt.pop("target", None)
        return found

    return [a for a in await asyncio.gather(*(one(i) for i in alert_ids)) if a]


def page_said(page: dict[str, Any]) -> str:
    """One page of an alert: its channel, where it stands, the provider's word and the reply."""
    said = _("Page by %(channel)s (level %(level)s): %(status)s") % {
        "channel": page["channel"],
        "level": page["escalation_level"],
        "status": page["status"],
    }
    if page.get("provider_status"):
        said += "; " + _("provider: %(status)s") % {"status": page["provider_status"]}
    if page.get("reply"):
        said += "; " + _("reply: %(reply)s") % {"reply": page["reply"]}
    return said


def timeline(case: dict[str, Any], alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(when, what) from receipt to acknowledgement, oldest first."""
    events: list[tuple[str, str]] = [(case["received_at"], _("Screening received"))]
    risk = case.get("risk")
    level = label
    if risk:
        events.append(
            (risk["assessed_at"], _("Assessed: %(level)s risk") % {"level": level(risk["level"])})
        )
    for alert in alerts:
        opened = _("Alert opened (%(level)s)") % {"level": level(alert["risk_level"])}
        events.append((alert["created_at"], opened))
        for attempt in alert.get("attempts", []):
            said = _("Page attempt %(number)s: %(outcome)s") % {
                "number": attempt["attempt"],
                "outcome": attempt["outcome"],
            }
            events.append((attempt["started_at"], said))
        for page in alert.get("pages", []):
            events.append((page["created_at"], page_said(page)))
        if alert.get("first_delivered_at"):
            events.append((alert["first_delivered_at"], _("Page delivered")))
        if alert.get("escalation_level"):
            escalated = _("Escalated to level %(step)s") % {"step": alert["escalation_level"]}
            events.append((alert["changed_at"], escalated))
        if alert.get("acknowledged_at"):
            by = _("Acknowledged by %(name)s") % {"name": alert.get("acknowledged_by")}
            events.append((alert["acknowledged_at"], by))
        if alert.get("resolved_at"):
            events.append((alert["resolved_at"], _("Resolved")))
    return sorted(events, key=lambda event: event[0])


async def case_context(request: Request, screening_id: uuid.UUID) -> dict[str, Any]:
    case = await api(request, "intake", f"/v1/screenings/{screening_id}")
    alerts = await _alert_details(request, [a["id"] for a in case.get("alerts", [])])
    plan = None
    if case.get("safety_plan"):
        try:
            plan = await api(request, "intake", f"/v1/safety-plans/{case['safety_plan']['id']}")
        except UpstreamError:
            plan = None
    instrument = INSTRUMENTS.get(case["instrument"])
    return {
        "case": case,
        "alerts": alerts,
        "plan": plan,
        "instrument": instrument,
        "answers": answered(instrument, case.get("answers") or {}),
        "timeline": timeline(case, alerts),
        "next_steps": next_steps((case.get("risk") or {}).get("level", "")),
    }


@router.get("/cases/{screening_id}")
async def case_page(screening_id: uuid.UUID, request: Request) -> Response:
    context = await case_context(request, screening_id)
    return render(request, "case.html", title=_("Case"), **context)


@router.get("/cases/{screening_id}/status")
async def case_status(screening_id: uuid.UUID, request: Request) -> Response:
    """The result panel alone, refreshed until the screening is assessed."""
    case = await api(request, "intake", f"/v1/screenings/{screening_id}")
    level = (case.get("risk") or {}).get("level", "")
    return render(request, "_result.html", case=case, next_steps=next_steps(level))
