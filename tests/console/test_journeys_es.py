"""The console's journeys again with the browser set to Spanish (Accept-Language es-US), each
page checked with axe-core like the English ones (tests/console/test_journeys.py): the
safety-plan journey (build, a stale edit's conflict, the person's printed copy), a supervisor's
pages and the clinicians' languages editor, and every other page once.

The person's printed copy is in the person's language, whoever prints it: a Spanish-speaking
person in Spain gets Spain's 024 and 112 and never 988; an English-speaking person's copy is in
English with 988 and 911 even when the reader's console is in Spanish.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect

from tests.console.test_journeys import DESKTOP, PHONE, accessible
from tests.support.cases import IMMINENT_ASQ, screening
from tests.support.keys import HOTLINE, KEYS
from tests.support.services import ServiceProcesses

SPANISH: dict[str, Any] = {"locale": "es-US"}


async def sign_in_es(page: Page, base: str, key: str, next_path: str = "/") -> None:
    await page.goto(f"{base}/login?next={next_path}")
    assert await page.locator("html").get_attribute("lang") == "es"
    await accessible(page)
    await page.get_by_label("Clave de API").fill(key)
    await page.get_by_role("button", name="Iniciar sesión").click()
    await page.wait_for_url(re.compile(rf"{re.escape(base)}{re.escape(next_path)}(#.*)?$"))


async def open_plan(intake: httpx.AsyncClient, **person: str) -> tuple[str, str]:
    """(screening id, plan id) of an imminent screening submitted by the hotline key."""
    async with httpx.AsyncClient(base_url=intake.base_url, headers=HOTLINE, timeout=10) as hot:
        sid = (await hot.post("/v1/screenings", json=screening(IMMINENT_ASQ, **person))).json()[
            "id"
        ]
        for _ in range(100):
            case = (await hot.get(f"/v1/screenings/{sid}")).json()
            if case["safety_plan"]:
                return sid, case["safety_plan"]["id"]
            await asyncio.sleep(0.1)
    raise AssertionError("a flagged screening opens a safety plan")


async def test_in_spanish_a_safety_plan_is_built_a_stale_edit_conflicts_and_it_prints_for_spain(
    console: ServiceProcesses, browser: Browser, intake: httpx.AsyncClient, screenshots: Path
) -> None:
    base = console.url("console")
    _, plan_id = await open_plan(intake, language="es", country="ES")
    context = await browser.new_context(**SPANISH, **DESKTOP)
    page = await context.new_page()
    await sign_in_es(page, base, KEYS["hotline"], f"/plans/{plan_id}")
    await accessible(page)
    # The emergency task lists Spain's lines, not 988.
    emergency = page.locator("#emergency")
    await expect(emergency).to_contain_text("024")
    await expect(emergency).to_contain_text("112")
    assert "988" not in await emergency.inner_text()
    step = page.locator("#step-warning_signs")
    add = "Agregar, con las propias palabras de la persona"
    await step.get_by_label(add).fill("No duermo desde hace días")
    await step.get_by_role("button", name="Agregar", exact=True).click()
    await expect(step.get_by_label("Entrada 1", exact=True)).to_have_value(
        "No duermo desde hace días"
    )
    await step.get_by_label(add).fill("Me alejo de mis amigos")
    await step.get_by_role("button", name="Agregar", exact=True).click()
    await step.get_by_role("button", name="Subir la entrada 2").click()
    await expect(step.get_by_label("Entrada 1", exact=True)).to_have_value("Me alejo de mis amigos")
    reasons = page.locator("#step-reason_for_living")
    await reasons.get_by_label(add).fill("Mi hija")
    await reasons.get_by_role("button", name="Agregar", exact=True).click()
    environment = page.locator("#step-environment_safety")
    await environment.get_by_label("O bien: no aplica, porque").fill("No hay medios en casa")
    await environment.get_by_role("button", name="Marcar como no aplicable").click()
    await expect(environment.get_by_text("No aplica: No hay medios en casa")).to_be_visible()
    await accessible(page)

    stale = await context.new_page()
    await stale.goto(f"{base}/plans/{plan_id}")
    await step.get_by_label("Entrada 1", exact=True).fill("Me alejo de mis amigos y mi familia")
    await step.locator("form.entry").first.get_by_role("button", name="Guardar").click()
    await expect(step.get_by_label("Entrada 1", exact=True)).to_have_value(
        "Me alejo de mis amigos y mi familia"
    )
    stale_step = stale.locator("#step-warning_signs")
    await stale_step.get_by_label("Entrada 2", exact=True).fill("Regalo mis cosas")
    await stale_step.locator("form.entry").nth(1).get_by_role("button", name="Guardar").click()
    await expect(stale.locator("#conflict")).to_contain_text("No se guardó")
    await accessible(stale)

    printable = await context.new_page()
    await printable.goto(f"{base}/plans/{plan_id}/print")
    assert await printable.locator("html").get_attribute("lang") == "es"
    await expect(printable.get_by_role("heading", name="Mi plan de seguridad")).to_be_visible()
    await expect(printable.get_by_text("Mi hija")).to_be_visible()
    await expect(printable.get_by_text("Señales de advertencia", exact=False)).to_be_visible()
    crisis = await printable.locator("main").inner_text()
    assert "024" in crisis and "112" in crisis
    assert "988" not in crisis and "911" not in crisis
    await accessible(printable)
    await printable.screenshot(path=screenshots / "safety-plan-print-es.png", full_page=True)
    await context.close()


async def test_a_us_english_persons_copy_is_english_with_988_even_from_a_spanish_console(
    console: ServiceProcesses, browser: Browser, intake: httpx.AsyncClient
) -> None:
    base = console.url("console")
    _, plan_id = await open_plan(intake, language="en", country="US")
    context = await browser.new_context(**SPANISH, **PHONE)
    page = await context.new_page()
    await sign_in_es(page, base, KEYS["hotline"], f"/plans/{plan_id}/print")
    assert await page.locator("html").get_attribute("lang") == "en"
    await expect(page.get_by_role("heading", name="My safety plan")).to_be_visible()
    text = await page.locator("main").inner_text()
    assert "988" in text and "911" in text and "024" not in text
    await accessible(page)
    await context.close()


async def test_in_spanish_a_supervisor_sets_a_clinicians_languages_and_every_page_passes_axe(
    console: ServiceProcesses,
    browser: Browser,
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
) -> None:
    base = console.url("console")
    made = await notify.post("/v1/clinicians", json={"name": f"sofia-{uuid.uuid4().hex[:6]}"})
    clinician = made.json()
    sid, plan_id = await open_plan(intake, language="pt", country="PT")
    context = await browser.new_context(**SPANISH, **DESKTOP)
    page = await context.new_page()
    await sign_in_es(page, base, KEYS["supervisor"], "/oncall")
    label = f"Idiomas de {clinician['name']} (p. ej., en, es)"
    field = page.get_by_label(label)
    await field.fill("es, en")
    await field.locator("xpath=ancestor::form").get_by_role("button", name="Guardar").click()
    await page.wait_for_url(re.compile(r"/oncall(#clinicians)?$"))
    await expect(
        page.get_by_label(f"Idiomas de {clinician['name']} (p. ej., en, es)")
    ).to_have_value("es, en")
    assert (await notify.get(f"/v1/clinicians/{clinician['id']}")).json()["languages"] == [
        "es",
        "en",
    ]
    # A tag that is not one is refused by name, on the page, in Spanish around it.
    await field.fill("es, klingon")
    await field.locator("xpath=ancestor::form").get_by_role("button", name="Guardar").click()
    await expect(page.locator("#clinicians .problem")).to_contain_text("languages.1")
    await accessible(page)
    for path in (
        "/",
        "/screenings/new?instrument=cssrs_screener",
        "/screenings/new?instrument=asq",
        "/screenings/new?instrument=phq9",
        "/oncall",
        "/policies",
        "/oversight",
        "/audit",
        f"/cases/{sid}",
        f"/plans/{plan_id}",
        f"/plans/{plan_id}/print",
    ):
        await page.goto(base + path)
        assert await accessible(page) > 0, path
        if path == f"/cases/{sid}":
            await expect(page.get_by_text("habla portugués", exact=False)).to_be_visible()
    await context.close()

    context = await browser.new_context(**SPANISH, **PHONE)
    page = await context.new_page()
    await sign_in_es(page, base, KEYS["admin"], "/keys")
    await accessible(page)
    await context.close()
