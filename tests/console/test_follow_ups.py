"""The follow-up worklist and the Caring Contacts enrolment form of the console, in English and
Spanish: through the real console process in front of the session's services (forms posted as
a browser posts them), and in Chromium where it is installed."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.async_api import Browser, expect

from tests.console.test_journeys import DESKTOP, accessible, sign_in
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.keys import HOTLINE, KEYS
from tests.support.services import ServiceProcesses
from tests.support.waits import wait_case


async def flagged(intake: httpx.AsyncClient) -> str:
    """A flagged screening of the hotline key; its follow-up's id once opened."""
    response = await intake.post("/v1/screenings", json=screening(HIGH_CSSRS), headers=HOTLINE)
    sid = response.json()["id"]
    case = await wait_case(intake, sid, lambda c: c.get("follow_up") is not None)
    return str(case["follow_up"]["id"])


async def signed_in_as(client: httpx.AsyncClient, who: str, language: str = "en") -> str:
    form = await client.get("/login", headers={"Accept-Language": language})
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    answer = await client.post(
        "/login", data={"key": KEYS[who], "csrf": token.group(1), "next": "/follow-ups"}
    )
    assert answer.status_code == 200, answer.text
    page = await client.get("/follow-ups", headers={"Accept-Language": language})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    return csrf.group(1) if csrf else ""


async def test_the_worklist_and_the_enrolment_form_in_english_and_spanish(
    console: ServiceProcesses, intake: httpx.AsyncClient
) -> None:
    fid = await flagged(intake)
    async with httpx.AsyncClient(base_url=console.url("console"), timeout=10) as client:
        await signed_in_as(client, "hotline")
        worklist = await client.get("/follow-ups")
        assert worklist.status_code == 200
        assert "<h1>Follow-ups</h1>" in worklist.text and f"/follow-ups/{fid}" in worklist.text
        page = await client.get(f"/follow-ups/{fid}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        assert "Record attempt" in page.text and "Record consent" in page.text
        attempt = await client.post(
            f"/follow-ups/{fid}/attempts",
            data={"csrf": csrf.group(1), "outcome": "left_message", "note": "voicemail"},
        )
        assert attempt.status_code == 303
        # Consent not ticked: nothing is recorded.
        refused = await client.post(
            f"/follow-ups/{fid}/caring-contacts",
            data={
                "csrf": csrf.group(1),
                "phone": "(201) 555-0160",
                "time_zone": "America/Chicago",
                "language": "es",
            },
        )
        assert refused.status_code == 422
        bad = await client.post(
            f"/follow-ups/{fid}/caring-contacts",
            data={
                "csrf": csrf.group(1),
                "phone": "12",
                "time_zone": "America/Chicago",
                "language": "es",
                "consent": "yes",
            },
        )
        assert bad.status_code == 422 and "phone" in bad.text
        enrolled = await client.post(
            f"/follow-ups/{fid}/caring-contacts",
            data={
                "csrf": csrf.group(1),
                "phone": "(201) 555-0160",
                "time_zone": "America/Chicago",
                "language": "es",
                "consent": "yes",
            },
        )
        assert enrolled.status_code == 303
        page = await client.get(f"/follow-ups/{fid}")
        assert "+12015550160" in page.text and "Withdraw consent" in page.text
        assert "Left a message" in page.text and "voicemail" in page.text

        spanish = await client.get(f"/follow-ups/{fid}", headers={"Accept-Language": "es"})
        assert '<html lang="es">' in spanish.text
        assert "Contactos de apoyo" in spanish.text and "Dejó un mensaje" in spanish.text
        assert "Retirar el consentimiento" in spanish.text
        worklist = await client.get("/follow-ups", headers={"Accept-Language": "es"})
        assert "<h1>Seguimientos</h1>" in worklist.text

    got = (await intake.get(f"/v1/follow-ups/{fid}")).json()
    assert got["attempts"] == 1 and got["caring_contacts"][0]["language"] == "es"


async def test_the_enrolment_in_a_browser(
    console: ServiceProcesses, browser: Browser, intake: httpx.AsyncClient
) -> None:
    fid = await flagged(intake)
    base = console.url("console")
    context = await browser.new_context(**DESKTOP)
    page = await context.new_page()
    await sign_in(page, base, KEYS["hotline"], "/follow-ups")
    await accessible(page)
    await page.get_by_role("link", name="Follow-ups").first.click()
    await page.locator(f'a[href="/follow-ups/{fid}"]').click()
    await page.wait_for_url(f"{base}/follow-ups/{fid}")
    await accessible(page)
    await page.get_by_label("Outcome of this call").select_option("no_answer")
    await page.get_by_role("button", name="Record attempt").click()
    await expect(page.locator("li").filter(has_text="No answer")).to_have_count(1)
    await page.get_by_label("Mobile number").fill("+1 201 555 0161")
    await page.get_by_label("Time zone").fill("America/Los_Angeles")
    await page.get_by_label("Language of the messages").select_option("en")
    await page.get_by_label("The person agreed to receive these messages").check()
    await page.get_by_role("button", name="Record consent").click()
    await expect(page.locator("#messages li")).to_have_count(12)
    await accessible(page)
    await context.close()
    got = (await intake.get(f"/v1/follow-ups/{fid}")).json()
    assert got["caring_contacts"][0]["address"] == "+12015550161"
    assert uuid.UUID(got["id"])
