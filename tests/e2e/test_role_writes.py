"""Every write route, done for real by every role the permission table lets do it.

The route matrix (tests/e2e/test_access.py) walks random ids: it proves who is refused, not that
an allowed role's change actually goes through on a real object. A role the table allows but the
database refuses (a CHECK that does not know it) answers 500 there unnoticed; here it fails.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest

from services.intake.permissions import ROUTES as INTAKE_ROUTES
from services.notify.permissions import ROUTES as NOTIFY_ROUTES
from shared.auth import Permission, Role, RouteTable
from shared.auth.roles import ROLE_PERMISSIONS
from shared.events import utcnow
from tests.support.cases import HIGH_CSSRS, IMMINENT_ASQ, screening
from tests.support.fhir import FHIR_JSON, fixture
from tests.support.keys import ADMIN, EHR_SYSTEMS, KEYS, bearer
from tests.support.safety_plans import REQUIRED_STEPS, open_plan
from tests.support.waits import wait_case

WRITES = ("POST", "PUT", "DELETE", "PATCH")
_PLAN = "/v1/safety-plans/{plan_id}"
_ENTRIES = f"{_PLAN}/steps/{{step}}/entries"
_NA = f"{_PLAN}/steps/{{step}}/not-applicable"
#: The write routes each scenario below exercises; every write route of intake and notify must be
#: in one (the signed-link GET of an acknowledgement, and Twilio's signed webhooks, are not a
#: credential's writes).
INTAKE_WRITES = {
    "screenings": {("POST", "/v1/screenings")},
    "safety plans": {
        ("POST", _ENTRIES),
        ("PUT", f"{_ENTRIES}/{{entry_id}}"),
        ("DELETE", f"{_ENTRIES}/{{entry_id}}"),
        ("PUT", f"{_PLAN}/steps/{{step}}/order"),
        ("PUT", _NA),
        ("DELETE", _NA),
        ("PUT", f"{_PLAN}/emergency-task"),
        ("POST", f"{_PLAN}/complete"),
        ("POST", f"{_PLAN}/review"),
        ("PUT", f"{_PLAN}/due"),
    },
    "fhir": {("POST", "/v1/fhir/QuestionnaireResponse"), ("POST", "/v1/fhir")},
    "subscriptions": {
        ("POST", "/v1/fhir/subscriptions"),
        ("DELETE", "/v1/fhir/subscriptions/{subscription_id}"),
    },
    "api keys": {("POST", "/v1/api-keys"), ("DELETE", "/v1/api-keys/{key_id}")},
    "crisis resources": {
        ("POST", "/v1/crisis-resources"),
        ("PUT", "/v1/crisis-resources/{resource_id}"),
        ("DELETE", "/v1/crisis-resources/{resource_id}"),
    },
    "follow-ups": {
        ("POST", "/v1/follow-ups/{follow_up_id}/attempts"),
        ("POST", "/v1/follow-ups/{follow_up_id}/caring-contacts"),
        ("DELETE", "/v1/follow-ups/{follow_up_id}/caring-contacts"),
        ("POST", "/v1/follow-up-tasks/{task_id}/done"),
    },
}
NOTIFY_WRITES = {
    "alerts": {("POST", "/v1/alerts/{alert_id}/ack"), ("POST", "/v1/alerts/{alert_id}/resolve")},
    "on call": {
        ("POST", "/v1/clinicians"),
        ("POST", "/v1/clinicians/{clinician_id}/contact-methods"),
        ("DELETE", "/v1/clinicians/{clinician_id}/contact-methods/{method_id}"),
        ("PUT", "/v1/clinicians/{clinician_id}/languages"),
        ("POST", "/v1/schedules"),
        ("PUT", "/v1/schedules/{schedule_id}"),
        ("POST", "/v1/schedules/{schedule_id}/overrides"),
        ("DELETE", "/v1/schedules/{schedule_id}/overrides/{override_id}"),
        ("POST", "/v1/policies"),
        ("PUT", "/v1/policies/{policy_id}"),
        ("DELETE", "/v1/policies/{policy_id}"),
    },
}
ROLES = [Role(r) for r in ("hotline", "ehr", "clinician", "supervisor", "admin")]


def _allowed(permission: Permission) -> list[Role]:
    return [role for role in ROLES if permission in ROLE_PERMISSIONS[role]]


def _cases(table: RouteTable, writes: dict[str, set]) -> list[tuple[str, Role]]:
    """(scenario, role) for every role that holds the permission of any of its routes."""
    out = []
    for scenario, routes in writes.items():
        permissions = {table[route].permission for route in routes}
        roles = {role for p in permissions if p is not None for role in _allowed(p)}
        out += [(scenario, role) for role in ROLES if role in roles]
    return out


def who(role: Role) -> dict[str, str]:
    return bearer(KEYS[role.value])


#: Writes that answered as expected, by method (a scenario that made none proves nothing).
DONE: Counter[str] = Counter()


def ok(response: httpx.Response, status: int) -> httpx.Response:
    request = response.request
    assert response.status_code == status, (
        f"{request.method} {request.url}: {response.status_code} {response.text}"
    )
    DONE[request.method] += 1
    return response


@pytest.mark.parametrize(
    ("table", "writes"), [(INTAKE_ROUTES, INTAKE_WRITES), (NOTIFY_ROUTES, NOTIFY_WRITES)]
)
def test_every_write_route_has_a_scenario(table: RouteTable, writes: dict[str, set]) -> None:
    # Twilio's webhooks are no credential's writes: only its signature opens them
    # (tests/notify/phones/).
    routes = {r for r, access in table.items() if r[0] in WRITES and not access.provider_signed}
    covered = set().union(*writes.values())
    assert routes == covered


# --- intake --------------------------------------------------------------------------------------


async def _screenings(intake: httpx.AsyncClient, role: Role) -> None:
    extra: dict = {"source": "hotline"}
    if role == Role.EHR:
        extra = {"source": "ehr", "external_id": f"{EHR_SYSTEMS[0]}|{uuid.uuid4().hex}"}
    ok(
        await intake.post("/v1/screenings", json=screening(HIGH_CSSRS, **extra), headers=who(role)),
        202,
    )


async def _safety_plans(intake: httpx.AsyncClient, role: Role) -> None:
    """Every change of a plan (its screening submitted by the hotline key) made by `role`; the
    review and the due time by `role` if it may, else by a clinician."""
    _, plan = await open_plan(intake, IMMINENT_ASQ)
    base = f"/v1/safety-plans/{plan['id']}"
    version = plan["version"]
    me = who(role)
    reviewer = me if role in _allowed(Permission.SAFETY_PLANS_REVIEW) else who(Role.CLINICIAN)

    def at(v: int, headers: dict[str, str] = me) -> dict[str, str]:
        return {**headers, "If-Match": f'"{v}"'}

    step = f"{base}/steps/warning_signs"
    added = ok(
        await intake.post(f"{step}/entries", json={"text": "first"}, headers=at(version)), 201
    )
    entry = added.headers["location"].rsplit("/", 1)[1]
    version = added.json()["version"]
    version = ok(
        await intake.put(f"{step}/entries/{entry}", json={"text": "edited"}, headers=at(version)),
        200,
    ).json()["version"]
    version = ok(
        await intake.put(f"{step}/order", json={"entry_ids": [entry]}, headers=at(version)), 200
    ).json()["version"]
    version = ok(await intake.delete(f"{step}/entries/{entry}", headers=at(version)), 200).json()[
        "version"
    ]
    version = ok(
        await intake.put(
            f"{step}/not-applicable", json={"reason": "none yet"}, headers=at(version)
        ),
        200,
    ).json()["version"]
    version = ok(await intake.delete(f"{step}/not-applicable", headers=at(version)), 200).json()[
        "version"
    ]
    for key in REQUIRED_STEPS:
        version = ok(
            await intake.post(
                f"{base}/steps/{key}/entries", json={"text": f"words {key}"}, headers=at(version)
            ),
            201,
        ).json()["version"]
    version = ok(
        await intake.put(
            f"{base}/emergency-task",
            json={"status": "declined", "reason": "safe with family, declined 988"},
            headers=at(version),
        ),
        200,
    ).json()["version"]
    due = (utcnow() + timedelta(hours=2)).isoformat()
    version = ok(
        await intake.put(f"{base}/due", json={"due_at": due}, headers=at(version, reviewer)), 200
    ).json()["version"]
    version = ok(
        await intake.post(
            f"{base}/review", json={"note": "reviewed"}, headers=at(version, reviewer)
        ),
        200,
    ).json()["version"]
    done = ok(await intake.post(f"{base}/complete", headers=at(version)), 200)
    assert done.json()["status"] == "complete"


async def _fhir(intake: httpx.AsyncClient, role: Role) -> None:
    headers = {**who(role), "Content-Type": FHIR_JSON}
    qr = fixture("phq9-lhc-forms.json", system=EHR_SYSTEMS[0])
    ok(await intake.post("/v1/fhir/QuestionnaireResponse", json=qr, headers=headers), 202)
    bundle = fixture("bundle-transaction.json", system=EHR_SYSTEMS[0])
    answered = ok(await intake.post("/v1/fhir", json=bundle, headers=headers), 200).json()
    assert all(e["response"]["status"].startswith("202") for e in answered["entry"]), answered


async def _subscriptions(intake: httpx.AsyncClient, role: Role) -> None:
    spec = {
        "endpoint": f"http://127.0.0.1:9/hooks/{uuid.uuid4().hex}",
        "identifier_system": EHR_SYSTEMS[0],
    }
    made = ok(await intake.post("/v1/fhir/subscriptions", json=spec, headers=who(role)), 201)
    ok(await intake.delete(f"/v1/fhir/subscriptions/{made.json()['id']}", headers=who(role)), 204)


async def _api_keys(intake: httpx.AsyncClient, role: Role) -> None:
    body = {"name": f"made-by-{role.value}", "role": "hotline"}
    made = ok(await intake.post("/v1/api-keys", json=body, headers=who(role)), 201)
    ok(await intake.delete(f"/v1/api-keys/{made.json()['id']}", headers=who(role)), 204)


async def _crisis_resources(intake: httpx.AsyncClient, role: Role) -> None:
    body = {
        "country": "NZ",
        "languages": ["en"],
        "name": f"line kept by {role.value}",
        "kind": "crisis_line",
        "channel": "phone",
        "contact": "1737",
        "open_24_7": True,
        "source": "https://example.org/crisis-lines",
    }
    made = ok(await intake.post("/v1/crisis-resources", json=body, headers=who(role)), 201)
    path = f"/v1/crisis-resources/{made.json()['id']}"
    ok(await intake.put(path, json={**body, "region": "NZ-WGN"}, headers=who(role)), 200)
    ok(await intake.delete(path, headers=who(role)), 204)


async def _follow_ups(intake: httpx.AsyncClient, role: Role) -> None:
    me = who(role)
    sid = ok(await intake.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=me), 202)
    case = await wait_case(intake, sid.json()["id"], lambda c: c.get("follow_up") is not None)
    base = f"/v1/follow-ups/{case['follow_up']['id']}"
    consent = {
        "channel": "sms",
        "phone": "+1 201 555 0170",
        "time_zone": "America/Denver",
        "language": "en",
    }
    ok(await intake.post(f"{base}/caring-contacts", json=consent, headers=me), 201)
    ok(await intake.delete(f"{base}/caring-contacts", headers=me), 204)
    got: dict = {}
    for _ in range(5):
        attempt = {"outcome": "no_answer", "note": f"tried by {role.value}"}
        got = ok(await intake.post(f"{base}/attempts", json=attempt, headers=me), 201).json()
    assert got["status"] == "unreachable"
    task = got["tasks"][0]["id"]
    ok(await intake.post(f"/v1/follow-up-tasks/{task}/done", headers=me), 200)


INTAKE_SCENARIOS: dict[str, Callable[[httpx.AsyncClient, Role], Awaitable[None]]] = {
    "screenings": _screenings,
    "safety plans": _safety_plans,
    "fhir": _fhir,
    "subscriptions": _subscriptions,
    "api keys": _api_keys,
    "crisis resources": _crisis_resources,
    "follow-ups": _follow_ups,
}


@pytest.mark.parametrize(("scenario", "role"), _cases(INTAKE_ROUTES, INTAKE_WRITES))
async def test_each_allowed_role_writes_in_intake(
    intake: httpx.AsyncClient, scenario: str, role: Role
) -> None:
    before = DONE.total()
    await INTAKE_SCENARIOS[scenario](intake, role)
    assert DONE.total() > before, f"{scenario}: no write was made as {role.value}"


# --- notify --------------------------------------------------------------------------------------


async def _alerts(intake: httpx.AsyncClient, notify: httpx.AsyncClient, role: Role) -> None:
    posted = await intake.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=ADMIN)
    case = await wait_case(intake, posted.json()["id"], lambda c: bool(c["alerts"]))
    alert = f"/v1/alerts/{case['alerts'][0]['id']}"
    assert ok(await notify.post(f"{alert}/ack", headers=who(role)), 200).json()["status"] == (
        "acknowledged"
    )
    assert ok(await notify.post(f"{alert}/resolve", headers=who(role)), 200).json()["status"] == (
        "resolved"
    )


async def _on_call(intake: httpx.AsyncClient, notify: httpx.AsyncClient, role: Role) -> None:
    me = who(role)
    clinician = ok(
        await notify.post("/v1/clinicians", json={"name": f"Dr {role.value}"}, headers=me), 201
    ).json()["id"]
    method = ok(
        await notify.post(
            f"/v1/clinicians/{clinician}/contact-methods",
            json={"kind": "webhook", "address": "http://127.0.0.1:9/pager"},
            headers=me,
        ),
        201,
    ).json()["id"]
    ok(await notify.delete(f"/v1/clinicians/{clinician}/contact-methods/{method}", headers=me), 204)
    spoken = await notify.put(
        f"/v1/clinicians/{clinician}/languages", json={"languages": ["en"]}, headers=me
    )
    assert ok(spoken, 200).json()["languages"] == ["en"]
    rotation = {
        "clinician_ids": [clinician],
        "shift_hours": 12,
        "start": "2026-11-30T08:00",
        "time_zone": "UTC",
    }
    body = {"name": f"rota of {role.value}", "rotations": [rotation]}
    schedule = ok(await notify.post("/v1/schedules", json=body, headers=me), 201).json()["id"]
    ok(
        await notify.put(f"/v1/schedules/{schedule}", json={**body, "name": "renamed"}, headers=me),
        200,
    )
    start = utcnow() + timedelta(days=400)
    cover = {
        "clinician_id": clinician,
        "start": start.isoformat(),
        "end": (start + timedelta(hours=4)).isoformat(),
    }
    override = ok(
        await notify.post(f"/v1/schedules/{schedule}/overrides", json=cover, headers=me), 201
    ).json()["id"]
    ok(await notify.delete(f"/v1/schedules/{schedule}/overrides/{override}", headers=me), 204)
    # No risk level: a policy of this test never routes another test's alerts.
    policy = {
        "name": f"policy of {role.value}",
        "risk_levels": [],
        "levels": [{"schedule_id": schedule}],
    }
    made = ok(await notify.post("/v1/policies", json=policy, headers=me), 201).json()["id"]
    ok(await notify.put(f"/v1/policies/{made}", json={**policy, "repeats": 1}, headers=me), 200)
    ok(await notify.delete(f"/v1/policies/{made}", headers=me), 204)


NOTIFY_SCENARIOS = {"alerts": _alerts, "on call": _on_call}


@pytest.mark.parametrize(("scenario", "role"), _cases(NOTIFY_ROUTES, NOTIFY_WRITES))
async def test_each_allowed_role_writes_in_notify(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, scenario: str, role: Role
) -> None:
    before = DONE.total()
    await NOTIFY_SCENARIOS[scenario](intake, notify, role)
    assert DONE.total() > before, f"{scenario}: no write was made as {role.value}"
