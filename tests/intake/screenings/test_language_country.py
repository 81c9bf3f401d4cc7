"""A screening records the person's language and country: JSON and FHIR, the case view, the
event to risk, and bad codes refused by name without storing anything."""

from __future__ import annotations

import json
import uuid

import asyncpg
import httpx
import pytest

from tests.support.cases import HIGH_CSSRS, LOW_CSSRS, screening
from tests.support.fhir import FHIR_JSON, fixture
from tests.support.waits import wait_case


async def test_language_country_and_region_are_recorded_and_shown(
    intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    body = screening(HIGH_CSSRS, language="es-mx", country="mx", region="MX-CMX")
    posted = await intake.post("/v1/screenings", json=body)
    assert posted.status_code == 202, posted.text
    sid = posted.json()["id"]
    case = (await intake.get(f"/v1/screenings/{sid}")).json()
    assert (case["language"], case["country"], case["region"]) == ("es-MX", "MX", "MX-CMX")
    # The event to risk carries the language (not PHI); the assessment passes it along.
    row = await db.fetchrow(
        "SELECT language, country, region FROM intake.screenings WHERE id = $1", uuid.UUID(sid)
    )
    assert tuple(row) == ("es-MX", "MX", "MX-CMX")
    assessed = await wait_case(intake, sid, lambda c: c["status"] == "assessed")
    assert assessed["risk"]["level"] == "high"
    # A replay names the same language; another language under the same key is another request.
    again = await intake.post("/v1/screenings", json=body, headers={"Idempotency-Key": f"k-{sid}"})
    assert again.status_code == 202
    same = await intake.post("/v1/screenings", json=body, headers={"Idempotency-Key": f"k-{sid}"})
    assert same.status_code == 200
    other = await intake.post(
        "/v1/screenings",
        json={**body, "language": "en"},
        headers={"Idempotency-Key": f"k-{sid}"},
    )
    assert other.status_code == 409


async def test_without_language_or_country_english_in_the_default_country(
    intake: httpx.AsyncClient,
) -> None:
    posted = await intake.post("/v1/screenings", json=screening(LOW_CSSRS))
    case = (await intake.get(f"/v1/screenings/{posted.json()['id']}")).json()
    assert (case["language"], case["country"], case["region"]) == ("en", "US", None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"language": "klingon-tlh"}, "language"),
        ({"language": "es-XX"}, "language"),
        ({"language": "sp"}, "language"),
        ({"country": "UK"}, "country"),
        ({"country": "ZZ"}, "country"),
        ({"region": "GB-SCT"}, "body"),  # a region needs its country
        ({"country": "ES", "region": "GB-SCT"}, "body"),
    ],
)
async def test_bad_codes_are_refused_by_name_and_nothing_is_stored(
    intake: httpx.AsyncClient, db: asyncpg.Pool, changes: dict[str, str], field: str
) -> None:
    body = screening(LOW_CSSRS, **changes)
    response = await intake.post("/v1/screenings", json=body)
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    assert any(p["field"] == field for p in problems), problems
    for value in changes.values():
        assert value not in response.text
    stored = await db.fetchval(
        "SELECT count(*) FROM intake.screenings WHERE subject_id = $1", body["subject_id"]
    )
    assert stored == 0


async def test_fhir_questionnaire_response_language_is_the_screenings(
    intake: httpx.AsyncClient,
) -> None:
    body = {**fixture("cssrs-bhp.json"), "language": "es"}
    response = await intake.post(
        "/v1/fhir/QuestionnaireResponse",
        content=json.dumps(body),
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status_code == 202, response.text
    assert response.json()["language"] == "es"
    case = (await intake.get(f"/v1/screenings/{response.json()['id']}")).json()
    assert case["language"] == "es"
    bad = await intake.post(
        "/v1/fhir/QuestionnaireResponse",
        content=json.dumps({**fixture("cssrs-bhp.json"), "language": "xx-YY"}),
        headers={"Content-Type": FHIR_JSON},
    )
    assert bad.status_code == 422, bad.text
    assert "QuestionnaireResponse.language" in bad.text
