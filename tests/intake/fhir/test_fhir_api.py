"""The FHIR endpoints on the real stack: screenings in, RiskAssessments out, OperationOutcomes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment

from tests.support.cases import LOW_CSSRS, screening
from tests.support.fhir import FHIR_JSON, fixture, issues, token
from tests.support.waits import wait_case

HEADERS = {"Content-Type": FHIR_JSON}


async def post(intake: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    return await intake.post(
        "/v1/fhir/QuestionnaireResponse", content=json.dumps(body), headers={**HEADERS, **headers}
    )


async def count_ehr(db: asyncpg.Pool, external_id: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM intake.screenings WHERE source = 'ehr' AND external_id = $1",
        external_id,
    )


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("phq9-lhc-forms.json", "moderate"),
        ("phq9-definition-integer.json", "none"),
        ("cssrs-bhp.json", "high"),
        ("cssrs-contained-questionnaire.json", "low"),
    ],
)
async def test_questionnaire_response_is_screened_and_comes_back_as_a_risk_assessment(
    name: str, level: str, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    body = fixture(name)
    response = await post(intake, body)
    assert response.status_code == 202, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    created = response.json()
    sid = created["id"]
    assert response.headers["location"] == f"/v1/fhir/QuestionnaireResponse/{sid}"
    assert created["resourceType"] == "QuestionnaireResponse"
    assert created["identifier"] == body["identifier"]
    assert created["meta"]["tag"][0]["code"] == "SUBSETTED"

    case = await wait_case(intake, sid, lambda c: c["status"] == "assessed")
    assert case["source"] == "ehr" and case["external_id"] == token(body)
    assert case["risk"]["level"] == level

    got = await intake.get(f"/v1/screenings/{sid}/fhir/RiskAssessment")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith(FHIR_JSON)
    ra = RiskAssessment.model_validate(got.json()).model_dump(mode="json")
    assert ra["id"] == sid and ra["status"] == "final"
    risk = {c["system"]: c["code"] for c in ra["prediction"][0]["qualitativeRisk"]["coding"]}
    assert risk["urn:crisis-triage:fhir:risk-level"] == level
    basis = ra["basis"][0]
    assert basis["type"] == "QuestionnaireResponse"
    assert basis["identifier"] == body["identifier"]
    assert basis["reference"] == f"QuestionnaireResponse/{sid}", "points to the screening"
    assert (await intake.get(f"/v1/fhir/{basis['reference']}")).status_code == 200
    assert ra["method"]["coding"][0]["version"] == case["risk"]["rules_version"].split("/")[1]
    assert [n["text"] for n in ra["note"]] == case["risk"]["reasons"]
    assert "Alexandra" not in got.text and "Confidential" not in got.text
    same = await intake.get(f"/v1/fhir/RiskAssessment/{sid}")
    assert same.json() == got.json()


async def test_phi_of_the_questionnaire_response_is_not_kept(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    body = fixture("cssrs-contained-questionnaire.json")
    sid = (await post(intake, body)).json()["id"]
    row = await db.fetchrow(
        "SELECT s.subject_id, s.contact, s.notes, f.* FROM intake.screenings s "
        "JOIN intake.fhir_responses f ON f.screening_id = s.id WHERE s.id = $1",
        uuid.UUID(sid),
    )
    stored = json.dumps({k: str(v) for k, v in dict(row).items()})
    assert "Alexandra" not in stored and "555 0199" not in stored
    assert json.loads(row["contact"] or "null") is None and row["notes"] is None
    assert json.loads(row["subject"]) == {
        "identifier": {"system": "urn:oid:2.16.840.1.113883.3.7418.1", "value": "MRN-553311"}
    }


async def test_the_same_identifier_again_returns_the_first_screening(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    body = fixture("cssrs-bhp.json")
    first = await post(intake, body)
    body["authored"] = (
        "2026-11-22T15:00:00Z"  # a resend stamps a new time; the answers are the same
    )
    again = await post(intake, body, **{"Content-Type": "application/json"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    assert await count_ehr(db, token(body)) == 1

    body["item"][2]["answer"][0]["valueCoding"]["code"] = "LA33-6"  # now Q6 says yes
    conflict = await post(intake, body)
    assert conflict.status_code == 409
    assert issues(conflict.json())[0]["code"] == "conflict"
    assert await count_ehr(db, token(body)) == 1


async def test_if_none_exist_is_a_conditional_create(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    body = fixture("phq9-definition-integer.json")
    condition = f"identifier={token(body)}"
    del body["identifier"]
    first = await post(intake, body, **{"If-None-Exist": condition})
    assert first.status_code == 202
    body["item"][0]["item"][0]["answer"] = [{"valueInteger": 3}]
    again = await post(intake, body, **{"If-None-Exist": condition})
    assert again.status_code == 200, "a match is returned whatever the body says"
    assert again.json()["id"] == first.json()["id"]
    assert await count_ehr(db, condition.removeprefix("identifier=")) == 1

    bad = await post(intake, body, **{"If-None-Exist": "patient=Patient/1"})
    assert bad.status_code == 400 and issues(bad.json())[0]["code"] == "not-supported"


async def test_prefer_return_minimal_and_operation_outcome(intake: httpx.AsyncClient) -> None:
    body = fixture("cssrs-bhp.json")
    minimal = await post(intake, body, Prefer="return=minimal")
    assert minimal.status_code == 202 and minimal.content == b""
    sid = minimal.headers["location"].rsplit("/", 1)[1]
    outcome = await post(intake, body, Prefer="return=OperationOutcome")
    assert outcome.status_code == 200
    assert sid in issues(outcome.json())[0]["diagnostics"]
    read = await intake.get(f"/v1/fhir/QuestionnaireResponse/{sid}")
    assert read.status_code == 200 and read.json()["identifier"] == body["identifier"]


BAD_CASES = [
    (
        "unsupported questionnaire",
        {"questionnaire": "http://loinc.org/q/99999-9"},
        422,
        "not-supported",
    ),
    ("not completed", {"status": "in-progress"}, 422, "business-rule"),
    ("wrong resource type", {"resourceType": "Observation"}, 400, "structure"),
]


@pytest.mark.parametrize(
    ("name", "change", "status", "code"), BAD_CASES, ids=[c[0] for c in BAD_CASES]
)
async def test_refusals_are_operation_outcomes_and_nothing_is_stored(
    name: str,
    change: dict[str, Any],
    status: int,
    code: str,
    intake: httpx.AsyncClient,
    db: asyncpg.Pool,
) -> None:
    body = {**fixture("phq9-lhc-forms.json"), **change}
    response = await post(intake, body)
    assert response.status_code == status
    assert response.headers["content-type"].startswith(FHIR_JSON)
    OperationOutcome.model_validate(response.json())
    assert issues(response.json())[0]["code"] == code
    assert await count_ehr(db, token(body)) == 0


async def test_missing_item_and_skip_logic_name_each_problem(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    phq9 = fixture("phq9-lhc-forms.json")
    del phq9["item"][0]["item"][8]
    missing = await post(intake, phq9)
    assert missing.status_code == 422
    [issue] = issues(missing.json())
    assert issue["code"] == "required" and issue["diagnostics"].startswith("44260-8 (PHQ-9 item 9)")

    cssrs = fixture("cssrs-bhp.json")
    cssrs["item"][1]["answer"][0]["valueCoding"]["code"] = "LA32-8"  # Q2 no, follow-ups yes
    conflict = await post(intake, cssrs)
    assert conflict.status_code == 422
    found = issues(conflict.json())
    assert [i["diagnostics"].split(":")[0] for i in found] == [
        "93248-3 (method)",
        "93249-1 (intent)",
    ]
    assert all(
        i["expression"][0].startswith("QuestionnaireResponse.item[1].answer[0]") for i in found
    )
    assert await count_ehr(db, token(phq9)) == await count_ehr(db, token(cssrs)) == 0


async def test_not_json_and_other_media_types(intake: httpx.AsyncClient) -> None:
    broken = await intake.post(
        "/v1/fhir/QuestionnaireResponse", content=b"{not json", headers=HEADERS
    )
    assert broken.status_code == 400 and issues(broken.json())[0]["code"] == "structure"
    xml = await intake.post(
        "/v1/fhir/QuestionnaireResponse",
        content=b"<QuestionnaireResponse/>",
        headers={"Content-Type": "application/fhir+xml"},
    )
    assert xml.status_code == 415


async def test_transaction_bundle_is_all_or_nothing(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    bundle = fixture("bundle-transaction.json")
    tokens = [token(e["resource"]) for e in bundle["entry"]]
    response = await intake.post("/v1/fhir", content=json.dumps(bundle), headers=HEADERS)
    assert response.status_code == 200, response.text
    out = Bundle.model_validate(response.json()).model_dump(mode="json")
    assert out["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses == ["202 Accepted", "202 Accepted"]
    ids = [e["response"]["location"].split("/")[1] for e in out["entry"]]
    levels = [
        (await wait_case(intake, sid, lambda c: c["status"] == "assessed"))["risk"]["level"]
        for sid in ids
    ]
    assert levels == ["none", "moderate"]

    replay = await intake.post("/v1/fhir", content=json.dumps(bundle), headers=HEADERS)
    assert [e["response"]["status"] for e in replay.json()["entry"]] == ["200 OK", "200 OK"]
    assert [e["response"]["location"].split("/")[1] for e in replay.json()["entry"]] == ids

    broken = fixture("bundle-transaction.json")
    del broken["entry"][1]["resource"]["item"][0]["answer"]  # Q1 unanswered: required
    refused = await intake.post("/v1/fhir", content=json.dumps(broken), headers=HEADERS)
    assert refused.status_code == 422
    assert issues(refused.json())[0]["expression"][0].startswith("Bundle.entry[1].resource")
    for entry in broken["entry"]:
        assert await count_ehr(db, token(entry["resource"])) == 0, "nothing of a failed transaction"
    assert [await count_ehr(db, t) for t in tokens] == [1, 1]


async def test_batch_bundle_answers_each_entry_on_its_own(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    bundle = fixture("bundle-transaction.json")
    bundle["type"] = "batch"
    bundle["entry"][0]["resource"]["questionnaire"] = "http://loinc.org/q/99999-9"
    bundle["entry"].append(
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
    )
    # Posted to the QuestionnaireResponse endpoint: a Bundle there is treated as posted to the base.
    response = await intake.post(
        "/v1/fhir/QuestionnaireResponse", content=json.dumps(bundle), headers=HEADERS
    )
    assert response.status_code == 200
    out = Bundle.model_validate(response.json()).model_dump(mode="json")
    assert out["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses == ["422 Unprocessable Entity", "202 Accepted", "400 Bad Request"]
    assert out["entry"][0]["response"]["outcome"]["issue"][0]["code"] == "not-supported"
    assert await count_ehr(db, token(bundle["entry"][0]["resource"])) == 0
    assert await count_ehr(db, token(bundle["entry"][1]["resource"])) == 1


async def test_only_transaction_or_batch_bundles(intake: httpx.AsyncClient) -> None:
    bundle = fixture("bundle-transaction.json")
    bundle["type"] = "collection"
    response = await intake.post("/v1/fhir", content=json.dumps(bundle), headers=HEADERS)
    assert response.status_code == 400
    assert issues(response.json())[0]["expression"] == ["Bundle.type"]


async def test_risk_assessment_of_a_json_screening_and_of_nothing(
    intake: httpx.AsyncClient,
) -> None:
    sid = (await intake.post("/v1/screenings", json=screening(LOW_CSSRS))).json()["id"]
    await wait_case(intake, sid, lambda c: c["status"] == "assessed")
    got = await intake.get(f"/v1/screenings/{sid}/fhir/RiskAssessment")
    ra = RiskAssessment.model_validate(got.json())
    assert ra.basis[0].identifier.value == f"urn:uuid:{sid}"
    low = {c.system: c.code for c in ra.prediction[0].qualitativeRisk.coding}
    assert low == {"http://loinc.org": "LA9194-7", "urn:crisis-triage:fhir:risk-level": "low"}

    unknown = await intake.get(f"/v1/screenings/{uuid.uuid4()}/fhir/RiskAssessment")
    assert unknown.status_code == 404 and issues(unknown.json())[0]["code"] == "not-found"
    not_an_id = await intake.get("/v1/fhir/RiskAssessment/not-a-uuid")
    assert not_an_id.status_code == 422
    OperationOutcome.model_validate(not_an_id.json())


async def test_capability_statement(intake: httpx.AsyncClient) -> None:
    response = await intake.get("/v1/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    cs = CapabilityStatement.model_validate(response.json())
    assert cs.fhirVersion == "4.0.1" and cs.kind == "instance"
    resources = {r.type: r for r in cs.rest[0].resource}
    assert {i.code for i in resources["QuestionnaireResponse"].interaction} == {"create", "read"}
    assert resources["QuestionnaireResponse"].conditionalCreate is True
    assert {i.code for i in resources["RiskAssessment"].interaction} == {"read"}
    assert {i.code for i in cs.rest[0].interaction} == {"transaction", "batch"}


PUBLIC_CASES = Path(__file__).resolve().parents[4] / "shared" / "checks" / "public-cases.json"


def public_cases() -> dict[str, Any]:
    if not PUBLIC_CASES.exists():
        pytest.skip("the shared contract cases are not beside the checkout")
    return json.loads(PUBLIC_CASES.read_text())


async def test_public_contract_case(intake: httpx.AsyncClient) -> None:
    """The contract check's own case: the same identifier gives the same id, and its level."""
    cases = public_cases()
    body = cases["fhir_phq9"]
    body["identifier"]["value"] += uuid.uuid4().hex[:6]
    first = await intake.post("/v1/fhir/QuestionnaireResponse", json=body)
    again = await intake.post("/v1/fhir/QuestionnaireResponse", json=body)
    assert first.status_code == 202 and again.json()["id"] == first.json()["id"]
    case = await wait_case(intake, first.json()["id"], lambda c: c["status"] == "assessed")
    assert case["risk"]["level"] == cases["fhir_phq9_level"]
