"""Access, end to end on the running services: the route matrix, keys from issue to
revocation, object and property scope, rest-hooks per identifier system, SSRF at registration.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from services.intake.app import create_app as intake_app
from services.intake.permissions import ROUTES as INTAKE_ROUTES
from services.notify.app import create_app as notify_app
from services.notify.permissions import ROUTES as NOTIFY_ROUTES
from services.risk.app import create_app as risk_app
from services.risk.permissions import ROUTES as RISK_ROUTES
from shared.auth import Role
from shared.auth.guard import api_routes
from shared.auth.roles import ROLE_PERMISSIONS
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.fhir import FHIR_JSON, fixture
from tests.support.keys import (
    CLINICIAN,
    EHR,
    EHR_SYSTEMS,
    HOTLINE,
    HOTLINE2,
    KEYS,
    SUPERVISOR,
    bearer,
)
from tests.support.services import ServiceProcesses
from tests.support.waits import wait_case

TABLES = {"intake": INTAKE_ROUTES, "risk": RISK_ROUTES, "notify": NOTIFY_ROUTES}
APPS = {"intake": intake_app, "risk": risk_app, "notify": notify_app}
CALLERS = {
    "nobody": None,
    "bogus": "ctk_this-key-was-never-issued-0123456789",
    **{role: KEYS[role] for role in ("hotline", "ehr", "clinician", "supervisor", "admin")},
}
CANARY = {"name": "Canary Q. Person", "phone": "+1 555 0199 7734"}
CANARY_NOTES = "canary note: lives alone, brother's number on the fridge"


def _fill(path: str) -> str:
    fills = {"{step}": "warning_signs", "{version}": "1"}
    return re.sub(r"\{[^}]+\}", lambda m: fills.get(m.group(0), str(uuid.uuid4())), path)


@pytest.mark.parametrize("service", ["intake", "risk", "notify"])
def test_every_route_is_in_its_services_table(service: str) -> None:
    routes = {
        (method, route.path)
        for route in api_routes(APPS[service]().routes)
        for method in route.methods
    }
    table = TABLES[service]
    assert routes - set(table) == set(), "routes missing from the permission table"
    assert set(table) - routes == set(), "table entries for routes that do not exist"


@pytest.mark.parametrize("service", ["intake", "risk", "notify"])
def test_the_api_docs_show_every_operation_with_its_permission(service: str) -> None:
    api = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    rows = {line for line in api.splitlines() if line.startswith(f"| {service} | `")}
    for (method, path), access in TABLES[service].items():
        permission = access.permission.value if access.permission else "public"
        assert f"| {service} | `{method} {path}` | `{permission}` |" in "\n".join(rows), path


@pytest.mark.parametrize("service", ["intake", "risk", "notify"])
async def test_every_operation_answers_as_the_table_says(
    service: str, services: ServiceProcesses
) -> None:
    """Walks the service's OpenAPI with no credential, a bogus one and each role."""
    table = TABLES[service]
    wrong: list[str] = []
    async with httpx.AsyncClient(base_url=services.url(service), timeout=10) as client:
        doc = (await client.get("/openapi.json")).json()
        assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        swept = 0
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                method = method.upper()
                access = table.get((method, path))
                assert access is not None, f"{method} {path} is not in the table"
                if access.permission is not None:
                    assert op.get("security") == [{"bearerAuth": []}], f"{method} {path}"
                    assert {"401", "403"} <= set(op["responses"]), f"{method} {path}"
                url = _fill(path)
                body = {} if method in ("POST", "PUT", "PATCH") else None
                for who, key in CALLERS.items():
                    swept += 1
                    headers = bearer(key) if key else {}
                    response = await client.request(method, url, json=body, headers=headers)
                    got = response.status_code
                    if access.permission is None and path.startswith("/v1/twilio/"):
                        # Twilio's webhooks: no credential, but a request without a valid
                        # X-Twilio-Signature is refused by the route itself.
                        ok = got == 403
                    elif access.permission is None:
                        ok = got not in (401, 403)
                    elif key is None or who == "bogus":
                        ok = got == 401 and "Bearer" in response.headers["www-authenticate"]
                    elif access.permission not in ROLE_PERMISSIONS[Role(who)]:
                        ok = got == 403
                    else:
                        ok = got not in (401, 403) and got < 500
                    if not ok:
                        wrong.append(f"{method} {path} as {who}: {got}")
                    if key:
                        assert key not in response.text, "an error body echoed the credential"
    assert wrong == []
    assert swept >= len(table)


async def _status_on_every_service(services: ServiceProcesses, key: str) -> dict[str, int]:
    paths = {
        "intake": f"/v1/screenings/{uuid.uuid4()}",
        "risk": "/v1/rulesets/current",
        "notify": "/v1/policies",
    }
    out = {}
    async with httpx.AsyncClient(timeout=5, headers=bearer(key)) as client:
        for name, path in paths.items():
            out[name] = (await client.get(services.url(name) + path)).status_code
    return out


async def test_a_key_is_issued_once_used_everywhere_and_revoked_everywhere_within_2s(
    intake: httpx.AsyncClient, services: ServiceProcesses
) -> None:
    made = await intake.post("/v1/api-keys", json={"name": "Dr New Person", "role": "clinician"})
    assert made.status_code == 201, made.text
    issued = made.json()
    key = issued["key"]
    assert key.startswith("ctk_") and len(key) >= 4 + 43
    assert {"id", "name", "role", "identifier_systems", "expires_at", "created_at"} <= set(issued)
    listed = (await intake.get("/v1/api-keys", params={"limit": 500})).json()
    mine = [k for k in listed if k["id"] == issued["id"]]
    assert mine and "key" not in mine[0] and key not in str(listed)

    # Accepted everywhere at once: the issue answers once the key's event is on the topic, and
    # a service that does not know a key yet looks again after reading the topic to its end.
    assert await _status_on_every_service(services, key) == {
        "intake": 404,
        "risk": 200,
        "notify": 200,
    }

    assert (await intake.delete(f"/v1/api-keys/{issued['id']}")).status_code == 204
    revoked_at = time.monotonic()
    while (got := await _status_on_every_service(services, key)) != dict.fromkeys(
        ("intake", "risk", "notify"), 401
    ):
        assert time.monotonic() - revoked_at < 2, f"a revoked key still works: {got}"
        await asyncio.sleep(0.02)
    assert (await intake.delete(f"/v1/api-keys/{issued['id']}")).status_code == 204
    assert (await intake.delete(f"/v1/api-keys/{uuid.uuid4()}")).status_code == 404


async def test_an_expired_key_is_refused(intake: httpx.AsyncClient) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    made = await intake.post(
        "/v1/api-keys",
        json={"name": "temp", "role": "hotline", "expires_at": expires.isoformat()},
    )
    assert made.status_code == 201
    key = made.json()["key"]
    post = screening(HIGH_CSSRS)
    assert (await intake.post("/v1/screenings", json=post, headers=bearer(key))).status_code == 202
    await asyncio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    late = await intake.post("/v1/screenings", json=post, headers=bearer(key))
    assert late.status_code == 401 and "Bearer" in late.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "role": "ehr"}, "identifier_systems"),
        ({"name": "x", "role": "hotline", "identifier_systems": ["urn:a"]}, "identifier_systems"),
        ({"name": "x", "role": "patient"}, "role"),
        ({"name": "bell\u0007", "role": "hotline"}, "name"),
        ({"name": "", "role": "hotline"}, "name"),
        ({"name": "x", "role": "hotline", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
    ],
)
async def test_bad_key_requests_are_422_naming_the_field(
    intake: httpx.AsyncClient, body: dict, field: str
) -> None:
    response = await intake.post("/v1/api-keys", json=body)
    assert response.status_code == 422, response.text
    assert any(field in p["field"] for p in response.json()["problems"])


async def test_keys_are_listed_a_page_at_a_time(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient
) -> None:
    for i in range(3):
        await intake.post("/v1/api-keys", json={"name": f"page-{i}", "role": "hotline"})
    first = await intake.get("/v1/api-keys", params={"limit": 2})
    assert len(first.json()) == 2 and first.links["next"]["url"]
    second = await intake.get(first.links["next"]["url"])
    assert second.status_code == 200 and second.json()
    assert {k["id"] for k in first.json()}.isdisjoint({k["id"] for k in second.json()})
    assert (await intake.get("/v1/api-keys", params={"limit": 501})).status_code == 422
    assert (await intake.get("/v1/api-keys", params={"cursor": "nope"})).status_code == 422
    for i in range(3):
        await notify.post("/v1/clinicians", json={"name": f"Dr Page {i}"})
    seen: list[str] = []
    url: str | None = "/v1/clinicians?limit=2"
    while url:
        page = await notify.get(url)
        assert len(page.json()) <= 2
        seen += [c["id"] for c in page.json()]
        url = page.links.get("next", {}).get("url")
    assert len(seen) == len(set(seen)) >= 3
    assert (await notify.get("/v1/policies", params={"limit": 0})).status_code == 422


async def test_hotline_staff_see_only_what_they_submitted_with_contact_and_notes(
    intake: httpx.AsyncClient,
) -> None:
    body = screening(HIGH_CSSRS, contact=CANARY, notes=CANARY_NOTES)
    sid = (await intake.post("/v1/screenings", json=body, headers=HOTLINE)).json()["id"]
    path = f"/v1/screenings/{sid}"
    own = await intake.get(path, headers=HOTLINE)
    assert own.status_code == 200
    assert own.json()["contact"] == CANARY and own.json()["notes"] == CANARY_NOTES
    assert own.headers["cache-control"] == "no-store"
    for who in ("clinician", "supervisor", "admin"):
        seen = (await intake.get(path, headers=bearer(KEYS[who]))).json()
        assert seen["contact"] == CANARY, who
    absent = await intake.get(f"/v1/screenings/{uuid.uuid4()}", headers=HOTLINE2)
    for other in (HOTLINE2, EHR):
        refused = await intake.get(path, headers=other)
        assert refused.status_code == 404, "out of scope reads as not there"
        assert refused.json()["error"] == absent.json()["error"]
        assert CANARY["name"] not in refused.text
    case = await wait_case(intake, sid, lambda c: c.get("safety_plan") is not None)
    plan = f"/v1/safety-plans/{case['safety_plan']['id']}"
    assert (await intake.get(plan, headers=HOTLINE)).status_code == 200
    assert (await intake.get(plan, headers=HOTLINE2)).status_code == 404
    assert (await intake.get(f"{plan}/revisions", headers=EHR)).status_code == 404


async def test_an_ehr_sees_what_is_filed_under_its_systems_without_contact(
    intake: httpx.AsyncClient,
) -> None:
    body = screening(HIGH_CSSRS, source="ehr", contact=CANARY, notes=CANARY_NOTES)
    sid = (await intake.post("/v1/screenings", json=body, headers=EHR)).json()["id"]
    seen = await intake.get(f"/v1/screenings/{sid}", headers=EHR)
    assert seen.status_code == 200
    assert "contact" not in seen.json() and "notes" not in seen.json()
    assert CANARY["name"] not in seen.text
    assert (await intake.get(f"/v1/screenings/{sid}", headers=HOTLINE)).status_code == 404
    assert (await intake.get(f"/v1/screenings/{sid}", headers=CLINICIAN)).json()["contact"]


async def test_fhir_posts_and_reads_follow_the_ehrs_identifier_systems(
    intake: httpx.AsyncClient,
) -> None:
    fhir = {"Content-Type": FHIR_JSON}
    qr = fixture("phq9-lhc-forms.json", system=EHR_SYSTEMS[1])
    posted = await intake.post("/v1/fhir/QuestionnaireResponse", json=qr, headers={**EHR, **fhir})
    assert posted.status_code == 202, posted.text
    sid = posted.json()["id"]
    read = await intake.get(f"/v1/fhir/QuestionnaireResponse/{sid}", headers=EHR)
    assert read.status_code == 200
    await wait_case(intake, sid, lambda c: c["status"] == "assessed")
    assert (await intake.get(f"/v1/fhir/RiskAssessment/{sid}", headers=EHR)).status_code == 200

    foreign = fixture("phq9-lhc-forms.json", system="urn:another:hospital")
    refused = await intake.post(
        "/v1/fhir/QuestionnaireResponse", json=foreign, headers={**EHR, **fhir}
    )
    assert refused.status_code == 403
    assert refused.json()["resourceType"] == "OperationOutcome"
    by_admin = await intake.post("/v1/fhir/QuestionnaireResponse", json=foreign, headers=fhir)
    other = by_admin.json()["id"]
    assert (await intake.get(f"/v1/fhir/RiskAssessment/{other}", headers=EHR)).status_code == 404
    hotline = await intake.post(
        "/v1/fhir/QuestionnaireResponse", json=fixture("phq9-lhc-forms.json"), headers=HOTLINE
    )
    assert hotline.status_code == 403
    anonymous = await intake.post(
        "/v1/fhir/QuestionnaireResponse", json=qr, headers={"Authorization": "", **fhir}
    )
    assert anonymous.status_code == 401 and anonymous.json()["resourceType"] == "OperationOutcome"


async def test_hotline_keys_submit_hotline_screenings_only(intake: httpx.AsyncClient) -> None:
    """An EHR's (source, external_id) deduplicates its messages: nobody else may claim one."""
    body = screening(HIGH_CSSRS, source="ehr", external_id=f"urn:x|{uuid.uuid4().hex}")
    assert (await intake.post("/v1/screenings", json=body, headers=HOTLINE)).status_code == 403


async def test_raw_path_input_never_reaches_the_trail(intake: httpx.AsyncClient) -> None:
    anonymous = {"Authorization": ""}
    assert (await intake.get("/v1/screenings/%00", headers=anonymous)).status_code == 401
    assert (await intake.get("/v1/screenings/%00", headers=HOTLINE)).status_code == 422
    bad = await intake.get("/v1/audit", params={"cursor": "\u00b2"}, headers=SUPERVISOR)
    assert bad.status_code == 422


async def test_idempotency_keys_belong_to_their_credential(intake: httpx.AsyncClient) -> None:
    body, key = screening(HIGH_CSSRS), {"Idempotency-Key": uuid.uuid4().hex}
    first = await intake.post("/v1/screenings", json=body, headers={**HOTLINE, **key})
    again = await intake.post("/v1/screenings", json=body, headers={**HOTLINE, **key})
    other = await intake.post("/v1/screenings", json=body, headers={**HOTLINE2, **key})
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]


async def test_an_ehr_manages_only_the_rest_hooks_of_its_systems(
    intake: httpx.AsyncClient,
) -> None:
    endpoint = f"http://127.0.0.1:9/hooks/{uuid.uuid4().hex}"
    own = await intake.post(
        "/v1/fhir/subscriptions",
        json={"endpoint": endpoint, "identifier_system": EHR_SYSTEMS[0]},
        headers=EHR,
    )
    assert own.status_code == 201, own.text
    foreign_spec = {"endpoint": endpoint, "identifier_system": "urn:another:hospital"}
    refused = await intake.post("/v1/fhir/subscriptions", json=foreign_spec, headers=EHR)
    assert refused.status_code == 403
    foreign = (await intake.post("/v1/fhir/subscriptions", json=foreign_spec)).json()["id"]
    sub = "/v1/fhir/subscriptions/"
    assert (await intake.get(sub + own.json()["id"], headers=EHR)).status_code == 200
    assert (await intake.get(sub + foreign, headers=EHR)).status_code == 404
    assert (await intake.delete(sub + foreign, headers=EHR)).status_code == 404
    assert (await intake.get(sub + foreign)).json()["status"] == "active"
    assert (await intake.get(sub + own.json()["id"], headers=SUPERVISOR)).status_code == 403


@pytest.mark.parametrize(
    "address",
    [
        "https://169.254.169.254/latest/meta-data/iam",
        "https://10.0.0.8/pager",
        "https://[::ffff:192.168.0.1]/pager",
        "ftp://pager.example.org/x",
    ],
)
async def test_outbound_urls_given_through_the_api_are_checked_at_registration(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, address: str
) -> None:
    clinician = await notify.post(
        "/v1/clinicians",
        json={"name": "Dr SSRF", "contact_methods": [{"kind": "webhook", "address": address}]},
    )
    assert clinician.status_code == 422, clinician.text
    assert clinician.json()["problems"][0]["field"].startswith("contact_methods.0")
    hook = await intake.post(
        "/v1/fhir/subscriptions", json={"endpoint": address, "identifier_system": "urn:x"}
    )
    assert hook.status_code == 422, hook.text


async def _ehr_key(intake: httpx.AsyncClient, *systems: str) -> dict[str, str]:
    made = await intake.post(
        "/v1/api-keys",
        json={"name": f"ehr-{uuid.uuid4().hex[:6]}", "role": "ehr", "identifier_systems": systems},
    )
    assert made.status_code == 201, made.text
    return bearer(made.json()["key"])


async def test_no_caller_can_take_over_an_ehrs_identifiers(intake: httpx.AsyncClient) -> None:
    """EHR B (or anyone but A) posting A's identifier first neither refuses A's screening nor
    answers A with a screening A cannot read; an EHR's external_id is in its own systems."""
    system_a = f"urn:a:{uuid.uuid4().hex[:8]}"
    ehr_a = await _ehr_key(intake, system_a)
    ehr_b = await _ehr_key(intake, f"urn:b:{uuid.uuid4().hex[:8]}")
    fhir = {"Content-Type": FHIR_JSON}
    qr = fixture("phq9-lhc-forms.json", system=system_a)
    token = f"{system_a}|{qr['identifier']['value']}"
    as_json = screening(HIGH_CSSRS, source="ehr", external_id=token)

    stolen = await intake.post("/v1/screenings", json=as_json, headers=ehr_b)
    assert stolen.status_code == 403, "an EHR's external_id must be in one of its systems"
    # Credentials that may post any identifier (a clinician's, a supervisor's, an admin's) post
    # in their own namespace: they never occupy A's.
    for other in (SUPERVISOR, CLINICIAN):
        assert (await intake.post("/v1/screenings", json=as_json, headers=other)).status_code == 202
    admin_fhir = await intake.post("/v1/fhir/QuestionnaireResponse", json=qr, headers=fhir)
    assert admin_fhir.status_code == 202

    posted = await intake.post("/v1/fhir/QuestionnaireResponse", json=qr, headers={**ehr_a, **fhir})
    assert posted.status_code == 202, posted.text
    sid = posted.json()["id"]
    assert sid != admin_fhir.json()["id"]
    assert (
        await intake.get(f"/v1/fhir/QuestionnaireResponse/{sid}", headers=ehr_a)
    ).status_code == 200
    again = await intake.post(
        "/v1/fhir/QuestionnaireResponse",
        json=qr,
        headers={**ehr_a, **fhir, "If-None-Exist": f"identifier={token}"},
    )
    assert (again.status_code, again.json()["id"]) == (200, sid)
    # A's own JSON post of the identifier, and a second key of A's system, replay A's screening.
    ehr_a2 = await _ehr_key(intake, system_a)
    resent = await intake.post(
        "/v1/fhir/QuestionnaireResponse", json=qr, headers={**ehr_a2, **fhir}
    )
    assert (resent.status_code, resent.json()["id"]) == (200, sid)
    own = screening(HIGH_CSSRS, source="ehr", external_id=f"{system_a}|json-{uuid.uuid4().hex}")
    first = await intake.post("/v1/screenings", json=own, headers=ehr_a)
    second = await intake.post("/v1/screenings", json=own, headers=ehr_a2)
    assert first.status_code == 202 and (second.status_code, second.json()["id"]) == (
        200,
        first.json()["id"],
    )
    # A plain external_id (the contract's "ehr-msg-991") is the EHR's own: filed, and replayed,
    # under its first system; one naming a system that is not the EHR's is refused.
    plain = screening(HIGH_CSSRS, source="ehr", external_id=f"plain-{uuid.uuid4().hex}")
    first = await intake.post("/v1/screenings", json=plain, headers=ehr_a)
    again = await intake.post("/v1/screenings", json=plain, headers=ehr_a2)
    assert first.status_code == 202 and (again.status_code, again.json()["id"]) == (
        200,
        first.json()["id"],
    )
    foreign = screening(HIGH_CSSRS, source="ehr", external_id=f"urn:x|{uuid.uuid4().hex}")
    assert (await intake.post("/v1/screenings", json=foreign, headers=ehr_a)).status_code == 403


async def test_hotline_external_ids_are_each_credentials_own(intake: httpx.AsyncClient) -> None:
    body = screening(HIGH_CSSRS, external_id=f"call-{uuid.uuid4().hex}")
    first = await intake.post("/v1/screenings", json=body, headers=HOTLINE)
    other = await intake.post("/v1/screenings", json=body, headers=HOTLINE2)
    again = await intake.post("/v1/screenings", json=body, headers=HOTLINE)
    assert first.status_code == other.status_code == 202
    assert first.json()["id"] != other.json()["id"] and again.json()["id"] == first.json()["id"]
    assert (
        await intake.get(f"/v1/screenings/{other.json()['id']}", headers=HOTLINE2)
    ).status_code == 200
