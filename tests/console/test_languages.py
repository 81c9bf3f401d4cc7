"""The console in English and Spanish: the catalogue is complete and up to date with the
sources, the language follows the person's choice, else the browser's, and the answers posted
are the same whatever the language."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from babel.messages.pofile import read_po

from services.console import i18n, web
from services.console.app import create_app
from services.console.i18n import LOCALE_DIR, POT
from services.console.instruments import INSTRUMENTS, answers_from_form
from services.console.pages import PAGES
from services.console.session import new_session_key
from services.console.settings import ConsoleSettings

SPANISH = LOCALE_DIR / "es" / "LC_MESSAGES" / "messages.po"
#: Questions whose validated Spanish wording (Columbia's C-SSRS screener, NIMH's ASQ) is not in
#: the catalogue yet: their entries are fuzzy, so the English question is shown rather than an
#: unvalidated translation of a clinical instrument (the instrument's intro says so in Spanish).
UNVERIFIED = frozenset(
    q.text for key in ("cssrs_screener", "asq") for q in INSTRUMENTS[key].questions
)


def test_the_pot_is_up_to_date_with_the_sources() -> None:
    """Extracted again, the sources give the msgids of messages.pot: a text added or changed
    without `python -m services.console.i18n update` fails here."""
    assert i18n.msgids(i18n.extract()) == i18n.msgids(POT.read_bytes())


def test_every_msgid_has_a_spanish_translation() -> None:
    with SPANISH.open("rb") as source:
        catalog = read_po(source, locale="es")
    expected = i18n.msgids(POT.read_bytes())
    assert {m.id for m in catalog if m.id} >= expected, "the .po lacks msgids of the .pot"
    untranslated = [
        m.id
        for m in catalog
        if m.id in expected
        and m.id not in UNVERIFIED
        and (m.fuzzy or not (all(m.string) if isinstance(m.string, tuple) else m.string))
    ]
    assert not untranslated
    held_back = [m.id for m in catalog if m.id in UNVERIFIED and not m.fuzzy]
    assert not held_back, "an unvalidated instrument translation would be shown"
    # Placeholders are kept (a %(name)s lost or misspelt breaks the page at runtime).
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        wanted = set(re.findall(r"%\(\w+\)[sd]", str(ids[-1])))
        for string in strings:
            assert set(re.findall(r"%\(\w+\)[sd]", str(string))) == wanted, m.id


def test_every_question_and_answer_label_of_the_instruments_is_translated() -> None:
    token = i18n._language.set("es")
    try:
        for instrument in INSTRUMENTS.values():
            for text in (instrument.intro, *(q.text for q in instrument.questions)):
                if text in UNVERIFIED:  # the validated English question, not a translation
                    assert i18n.gettext(text) == text, text
                else:
                    assert i18n.gettext(text) != text, text
            for question in instrument.questions:
                for _value, label in question.choices:
                    assert label in ("No",) or i18n.gettext(label) != label, label
    finally:
        i18n._language.reset(token)


def test_the_browser_language_is_negotiated_by_its_weights() -> None:
    assert i18n.from_header("es-MX,es;q=0.9,en;q=0.8") == "es"
    assert i18n.from_header("en-US,en;q=0.9,es;q=0.8") == "en"
    assert i18n.from_header("fr-FR,fr;q=0.9,es;q=0.5") == "es"
    assert i18n.from_header("de,fr") is None
    assert i18n.from_header("es;q=0,en") == "en"


def test_dates_are_shown_in_the_readers_zone_and_language() -> None:
    moment = "2026-12-06T19:26:00+00:00"
    tokens = (i18n._language.set("es"), i18n._zone.set(i18n.zone_named("America/Chicago")))
    try:
        assert i18n.when(moment).startswith("6 dic 2026 13:26")
        past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        assert i18n.ago(past) == "hace 5 minutos"
    finally:
        i18n._language.reset(tokens[0])
        i18n._zone.reset(tokens[1])
    assert i18n.when(moment) == "Dec 6, 2026 7:26\u202fPM UTC"
    for bad in ("../../etc/passwd", "Nowhere/Atall", "x" * 100, ""):
        assert i18n.zone_named(bad) is UTC


@pytest.fixture
async def console() -> AsyncIterator[tuple[httpx.AsyncClient, web.Console]]:
    """The console app in-process, with a hotline worker's session (no service is called by
    the pages used here)."""
    settings = ConsoleSettings(
        NOTIFY_URL="http://127.0.0.1:9",
        INTAKE_URL="http://127.0.0.1:9",
        CONSOLE_SESSION_KEYS=new_session_key(),
    )
    app = create_app(settings)
    app.state.console = state = web.Console(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://console"
    ) as client:
        yield client, state
    await state.upstream.aclose()


def _sign_in(client: httpx.AsyncClient, state: web.Console, language: str = "") -> str:
    session = state.sealer.start(
        credential="k" * 30, name="counsellor", role="hotline", method="api-key"
    )
    if language:
        from dataclasses import replace

        session = replace(session, language=language)
    client.cookies.set(state.cookie, state.sealer.seal(session))
    return session.csrf


def _cookie(answer: httpx.Response, name: str) -> str:
    """A cookie the answer set, as a browser sends it back (Starlette quotes a value with '=')."""
    return answer.cookies[name].strip('"')


async def test_a_page_asked_in_spanish_is_in_spanish(
    console: tuple[httpx.AsyncClient, web.Console],
) -> None:
    client, state = console
    english = await client.get("/login")
    assert '<html lang="en">' in english.text and "Sign in" in english.text
    spanish = await client.get("/login", headers={"Accept-Language": "es-US,es;q=0.9"})
    assert '<html lang="es">' in spanish.text
    assert "Iniciar sesión" in spanish.text and "Sign in" not in spanish.text
    _sign_in(client, state)
    form = await client.get(
        "/screenings/new", params={"instrument": "asq"}, headers={"Accept-Language": "es"}
    )
    assert '<html lang="es">' in form.text
    # ASQ's questions stay in their validated English until NIMH's Spanish wording is added.
    assert "4. Have you ever tried to kill yourself?" in form.text
    assert "hasta incorporar la versión validada" in form.text
    assert "Se negó a responder" in form.text and "Enviar evaluación" in form.text


async def test_the_switchers_choice_wins_over_the_browsers(
    console: tuple[httpx.AsyncClient, web.Console],
) -> None:
    client, state = console
    # Before signing in: kept in its own cookie, and back to the same page.
    chosen = await client.post("/language", data={"language": "es", "next": "/login?next=/oncall"})
    assert chosen.status_code == 303 and chosen.headers["location"] == "/login?next=/oncall"
    page = await client.get("/login", headers={"Accept-Language": "en-US"})
    assert '<html lang="es">' in page.text
    # Signed in: kept in the session, and it wins over the header.
    csrf = _sign_in(client, state)
    client.cookies.delete(i18n.LANGUAGE_COOKIE)
    chosen = await client.post(
        "/language",
        data={"language": "es", "next": "/screenings/new?instrument=phq9", "csrf": csrf},
    )
    assert chosen.headers["location"] == "/screenings/new?instrument=phq9"
    session = state.sealer.open(_cookie(chosen, state.cookie))
    assert session is not None and session.language == "es"
    client.cookies.set(state.cookie, _cookie(chosen, state.cookie))
    client.cookies.delete(i18n.LANGUAGE_COOKIE)
    form = await client.get(chosen.headers["location"], headers={"Accept-Language": "en"})
    assert '<html lang="es">' in form.text and "Casi todos los días" in form.text
    # Back to English by the switcher, whatever the browser says.
    again = await client.post("/language", data={"language": "en", "csrf": csrf})
    client.cookies.set(state.cookie, _cookie(again, state.cookie))
    form = await client.get("/screenings/new", headers={"Accept-Language": "es"})
    assert '<html lang="en">' in form.text
    # Another site cannot switch it; nor can a forged token change the session.
    refused = await client.post(
        "/language", data={"language": "es"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert refused.status_code == 403
    forged = await client.post("/language", data={"language": "es", "csrf": "forged"})
    assert state.cookie not in forged.cookies
    assert ("POST", "/language") in PAGES


def _form_values(html: str) -> dict[str, list[str]]:
    """Each radio button's name and values, in the page's order."""
    values: dict[str, list[str]] = {}
    for name, value in re.findall(r'type="radio" name="([^"]+)" value="([^"]+)"', html):
        values.setdefault(name, []).append(value)
    return values


@pytest.mark.parametrize("key", sorted(INSTRUMENTS))
async def test_the_answers_posted_are_the_same_in_both_languages(
    console: tuple[httpx.AsyncClient, web.Console], key: str
) -> None:
    """The forms have the same fields and values in English and Spanish, and the same answers
    come out of them."""
    client, state = console
    _sign_in(client, state)
    pages = {
        lang: await client.get(
            "/screenings/new", params={"instrument": key}, headers={"Accept-Language": lang}
        )
        for lang in ("en", "es")
    }
    assert '<html lang="es">' in pages["es"].text
    fields = {lang: _form_values(page.text) for lang, page in pages.items()}
    assert fields["en"] == fields["es"] and fields["en"]
    hidden = {
        lang: re.findall(r'type="hidden" name="(instrument)" value="([^"]+)"', page.text)
        for lang, page in pages.items()
    }
    assert hidden["en"] == hidden["es"]
    filled = {name: values[-1] for name, values in fields["es"].items()}
    assert answers_from_form(INSTRUMENTS[key], filled) == answers_from_form(
        INSTRUMENTS[key], {name: values[-1] for name, values in fields["en"].items()}
    )
