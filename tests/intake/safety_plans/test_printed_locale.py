"""The printed plan and the emergency task use the person's country and language: the crisis
lines come from `/v1/crisis-resources` for the screening's country (region first), never a
hard-wired number, and the copy is printed in the person's language."""

from __future__ import annotations

import httpx
import pytest

from tests.support.cases import IMMINENT_ASQ
from tests.support.safety_plans import open_plan

HTML = {"Accept": "text/html"}


async def test_a_spanish_plan_for_a_person_in_spain_shows_024_and_112_and_no_988(
    intake: httpx.AsyncClient,
) -> None:
    _, plan = await open_plan(intake, IMMINENT_ASQ, language="es", country="ES")
    assert plan["person"] == {"language": "es", "country": "ES", "region": None}
    contacts = {r["contact"] for r in plan["crisis_resources"]}
    assert {"024", "112"} <= contacts and "988" not in contacts and "911" not in contacts
    assert "988" not in plan["emergency_task"]["description"]

    base = f"/v1/safety-plans/{plan['id']}"
    html = (await intake.get(base, headers=HTML)).text
    assert '<html lang="es">' in html
    assert "Mi plan de seguridad" in html and "Si estoy en crisis" in html
    assert "Señales de advertencia" in html  # the steps' headings in Spanish
    assert "024" in html and "112" in html
    assert "988" not in html and "911" not in html
    assert "My safety plan" not in html

    pdf = await intake.get(base, headers={"Accept": "application/pdf"})
    assert pdf.status_code == 200, pdf.text
    assert pdf.content.startswith(b"%PDF-")


async def test_a_us_english_plan_shows_988_and_911(intake: httpx.AsyncClient) -> None:
    _, plan = await open_plan(intake, IMMINENT_ASQ, language="en", country="US")
    html = (await intake.get(f"/v1/safety-plans/{plan['id']}", headers=HTML)).text
    assert '<html lang="en">' in html and "My safety plan" in html
    assert "988" in html and "911" in html
    assert "024" not in html and "112" not in html


async def test_a_person_without_a_country_is_shown_the_default_countrys_lines(
    intake: httpx.AsyncClient,
) -> None:
    _, plan = await open_plan(intake, IMMINENT_ASQ, language="es")
    assert plan["person"]["country"] == "US"
    html = (await intake.get(f"/v1/safety-plans/{plan['id']}", headers=HTML)).text
    # The 988 Lifeline answers in Spanish too: in a Spanish copy, in Spanish words.
    assert "988" in html and "llame al 988" in html and "Mi plan de seguridad" in html


@pytest.mark.parametrize("language", ["fr", "de-AT"])
async def test_a_language_without_a_catalogue_prints_in_english(
    intake: httpx.AsyncClient, language: str
) -> None:
    _, plan = await open_plan(intake, IMMINENT_ASQ, language=language, country="CA")
    html = (await intake.get(f"/v1/safety-plans/{plan['id']}", headers=HTML)).text
    assert '<html lang="en">' in html and "My safety plan" in html
    assert "988" in html  # Canada's 9-8-8


def test_every_text_of_the_printed_copy_has_its_spanish_translation() -> None:
    """Intake's Spanish catalogue covers every text the copy prints (a new text without its
    translation would print in English in a Spanish copy)."""
    import ast
    from pathlib import Path

    from services.intake.safety_plans import printing

    source = Path(printing.__file__).read_text()
    marked = {
        node.args[0].value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("_", "N_")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }
    assert len(marked) >= 15
    spanish = printing.translations("es")
    untranslated = sorted(m for m in marked if spanish.ugettext(m) == m and m != "No")
    assert not untranslated
    assert printing.printed_language("es-MX") == "es"
    assert printing.printed_language("fr") == "en"
