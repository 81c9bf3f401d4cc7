"""`GET /v1/me`: who a credential is (the console's sign-in asks it), and the case view's
answers (the console shows them as questions)."""

from __future__ import annotations

import httpx

from tests.support.cases import HIGH_CSSRS, screening
from tests.support.keys import EHR_SYSTEMS, KEYS, NAMES, bearer
from tests.support.services import ServiceProcesses


async def test_every_role_may_ask_who_it_is_and_nothing_more(services: ServiceProcesses) -> None:
    async with httpx.AsyncClient(base_url=services.url("intake"), timeout=10) as client:
        for who, key in KEYS.items():
            me = await client.get("/v1/me", headers=bearer(key))
            assert me.status_code == 200, (who, me.text)
            systems = list(EHR_SYSTEMS) if who == "ehr" else []
            role = who.rstrip("2")
            assert me.json() == {"name": NAMES[who], "role": role, "identifier_systems": systems}
            assert key not in me.text
        assert (await client.get("/v1/me")).status_code == 401
        refused = await client.get("/v1/me", headers=bearer("ctk_" + "z" * 43))
        assert refused.status_code == 401 and "z" * 43 not in refused.text


async def test_the_case_view_carries_the_answers_as_submitted(intake: httpx.AsyncClient) -> None:
    body = screening(HIGH_CSSRS, imminent_danger=False)
    sid = (await intake.post("/v1/screenings", json=body)).json()["id"]
    case = (await intake.get(f"/v1/screenings/{sid}")).json()
    assert case["answers"] == HIGH_CSSRS["answers"]
    assert case["imminent_danger"] is False
