"""Crisis lines and emergency numbers per country: the seed, admin CRUD against the real stack,
staleness, what a person is shown (`resources_for`), and bad input."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.intake.crisis_resources import service as crisis
from shared.db import SessionFactory, create_engine, create_session_factory
from shared.events import utcnow
from tests.support.keys import CLINICIAN, EHR, HOTLINE, SUPERVISOR

SEEDED = ("US", "GB", "CA", "ES", "MX", "IE", "AU")
BASE = "/v1/crisis-resources"


def resource(**changes: Any) -> dict[str, Any]:
    """A valid resource in New Zealand (not seeded: the seed's countries stay as seeded)."""
    body: dict[str, Any] = {
        "country": "NZ",
        "languages": ["en", "mi"],
        "name": f"Test line {uuid.uuid4().hex[:8]}",
        "kind": "crisis_line",
        "channel": "phone",
        "contact": "1737",
        "open_24_7": True,
        "source": "https://example.org/crisis-lines",
        "verified_at": utcnow().date().isoformat(),
    }
    return {**body, **changes}


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url, pool_size=1)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.mark.parametrize("country", SEEDED)
async def test_the_seed_has_a_crisis_line_and_an_emergency_number_with_sources(
    intake: httpx.AsyncClient, country: str
) -> None:
    got = await intake.get(BASE, params={"country": country}, headers=HOTLINE)
    assert got.status_code == 200, got.text
    rows = got.json()
    assert {r["kind"] for r in rows} == {"crisis_line", "emergency"}
    assert all(r["country"] == country for r in rows)
    assert all(r["source"].startswith("https://") for r in rows)
    # At least one crisis line and one emergency number were checked against their source.
    for kind in ("crisis_line", "emergency"):
        assert any(r["kind"] == kind and not r["stale"] for r in rows), kind


async def test_the_seed_holds_the_numbers_people_need(intake: httpx.AsyncClient) -> None:
    rows = (await intake.get(BASE, params={"limit": 500})).json()
    seen = {(r["country"], r["kind"], r["channel"], r["contact"]) for r in rows}
    assert {
        ("US", "crisis_line", "phone", "988"),
        ("US", "crisis_line", "sms", "988"),
        ("US", "emergency", "phone", "911"),
        ("GB", "crisis_line", "phone", "116 123"),
        ("GB", "crisis_line", "sms", "85258"),
        ("GB", "crisis_line", "phone", "111"),
        ("GB", "emergency", "phone", "999"),
        ("CA", "crisis_line", "phone", "988"),
        ("CA", "emergency", "phone", "911"),
        ("ES", "crisis_line", "phone", "024"),
        ("ES", "emergency", "phone", "112"),
        ("MX", "crisis_line", "phone", "800 911 2000"),
        ("MX", "emergency", "phone", "911"),
        ("IE", "crisis_line", "phone", "116 123"),
        ("IE", "crisis_line", "phone", "1800 247 247"),
        ("IE", "emergency", "phone", "112"),
        ("IE", "emergency", "phone", "999"),
        ("AU", "crisis_line", "phone", "13 11 14"),
        ("AU", "crisis_line", "sms", "0477 13 11 14"),
        ("AU", "emergency", "phone", "000"),
    } <= seen
    england = [r for r in rows if r["region"] == "GB-ENG"]
    assert [r["contact"] for r in england] == ["111"]


async def _audited(intake: httpx.AsyncClient, resource_name: str, count: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        got = await intake.get("/v1/audit", params={"resource": resource_name}, headers=SUPERVISOR)
        assert got.status_code == 200, got.text
        if len(got.json()) >= count or time.monotonic() > deadline:
            return got.json()
        await asyncio.sleep(0.1)


async def test_admins_keep_resources_and_every_other_role_only_reads(
    intake: httpx.AsyncClient,
) -> None:
    made = await intake.post(BASE, json=resource(languages=["EN-nz", "mi"]))
    assert made.status_code == 201, made.text
    item = made.json()
    path = f"{BASE}/{item['id']}"
    assert made.headers["location"] == path
    assert item["languages"] == ["en-NZ", "mi"]
    assert item["stale"] is False

    for role in (HOTLINE, EHR, CLINICIAN, SUPERVISOR):
        assert (await intake.get(path, headers=role)).json() == item
        assert (await intake.post(BASE, json=resource(), headers=role)).status_code == 403
        assert (await intake.put(path, json=resource(), headers=role)).status_code == 403
        assert (await intake.delete(path, headers=role)).status_code == 403

    listed = (await intake.get(BASE, params={"country": "nz", "language": "en"})).json()
    assert item["id"] in {r["id"] for r in listed}
    in_german = (await intake.get(BASE, params={"country": "NZ", "language": "de"})).json()
    assert item["id"] not in {r["id"] for r in in_german}

    changed = await intake.put(path, json=resource(contact="0800 543 354", region="NZ-AUK"))
    assert changed.status_code == 200, changed.text
    assert (changed.json()["contact"], changed.json()["region"]) == ("0800 543 354", "NZ-AUK")
    assert (await intake.get(path)).json()["contact"] == "0800 543 354"

    assert (await intake.delete(path)).status_code == 204
    assert (await intake.get(path)).status_code == 404
    assert (await intake.delete(path)).status_code == 404
    assert (await intake.put(path, json=resource())).status_code == 404

    entries = await _audited(intake, f"crisis-resource/{item['id']}", 3)
    done = {(e["action"], e["outcome"]) for e in entries if e["role"] == "admin"}
    assert {
        ("create_crisis_resource", "success"),
        ("replace_crisis_resource", "success"),
        ("delete_crisis_resource", "success"),
    } <= done


async def test_a_resource_is_stale_181_days_after_its_check_not_a_day_after(
    intake: httpx.AsyncClient,
) -> None:
    today = utcnow().date()
    stale = {}
    for days in (181, 180, 1):
        verified = (today - timedelta(days=days)).isoformat()
        made = await intake.post(BASE, json=resource(verified_at=verified))
        assert made.status_code == 201, made.text
        stale[days] = made.json()
    never = (await intake.post(BASE, json=resource(verified_at=None))).json()
    assert stale[181]["stale"] is True
    assert stale[180]["stale"] is False
    assert stale[1]["stale"] is False
    assert never["stale"] is True
    listed = {
        r["id"]: r["stale"] for r in (await intake.get(BASE, params={"country": "NZ"})).json()
    }
    assert listed[stale[181]["id"]] is True and listed[stale[1]["id"]] is False
    for made in (*stale.values(), never):
        assert (await intake.delete(f"{BASE}/{made['id']}")).status_code == 204


async def test_a_person_in_spain_is_shown_024_and_112_and_never_988(
    intake: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    async with sessions() as session:
        shown = await crisis.resources_for(session, "ES", language="es")
    assert [r.contact for r in shown.crisis_lines] == ["024"]
    assert [r.contact for r in shown.emergency] == ["112"]
    assert "988" not in {r.contact for r in shown.all}


async def test_a_persons_region_comes_first_and_their_language_first_within_it(
    intake: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    async with sessions() as session:
        england = await crisis.resources_for(session, "gb", region="GB-ENG", language="en-GB")
        scotland = await crisis.resources_for(session, "GB", region="GB-SCT")
        anywhere = await crisis.resources_for(session, "GB")
        in_spanish = await crisis.resources_for(session, "US", language="es-MX")
        in_french = await crisis.resources_for(session, "CA", language="fr")
    assert england.crisis_lines[0].contact == "111"  # the region's line first
    assert {r.contact for r in england.crisis_lines} == {"111", "116 123", "85258"}
    assert "111" not in {r.contact for r in scotland.all} | {r.contact for r in anywhere.all}
    assert [r.contact for r in anywhere.emergency] == ["999"]
    # The 988 Lifeline answers in Spanish: its phone first, then its text and chat.
    assert [r.channel for r in in_spanish.crisis_lines] == ["phone", "sms", "chat"]
    assert [r.contact for r in in_spanish.emergency] == ["911"]  # shown whatever its language
    assert [r.contact for r in in_french.crisis_lines] == ["988", "988"]
    with pytest.raises(ValueError):
        async with sessions() as session:
            await crisis.resources_for(session, "UK")


BAD = [
    ("country not assigned", {"country": "UK"}, "country"),
    ("country unknown", {"country": "ZZ"}, "country"),
    ("country too long", {"country": "USA"}, "country"),
    ("language malformed", {"languages": ["en_US"]}, "languages.0"),
    ("language missing", {"languages": []}, "languages"),
    ("region of another country", {"region": "ES-CT"}, "region"),
    ("region malformed", {"region": "Auckland"}, "region"),
    ("phone with letters", {"contact": "1-800-TALK"}, "contact"),
    ("phone not e164", {"contact": "+0 1737 0000"}, "contact"),
    ("phone too short", {"contact": "12"}, "contact"),
    ("chat over http", {"channel": "chat", "contact": "http://example.org/chat"}, "contact"),
    ("chat not a url", {"channel": "url", "contact": "example.org"}, "contact"),
    ("source over http", {"source": "http://example.org/"}, "source"),
    ("source with credentials", {"source": "https://user:pw@example.org/"}, "source"),
    ("keyword on a phone", {"keyword": "HELP"}, "keyword"),
    ("keyword two words", {"channel": "sms", "keyword": "HELP ME"}, "keyword"),
    (
        "emergency by chat",
        {"kind": "emergency", "channel": "chat", "contact": "https://e.org"},
        "channel",
    ),
    ("kind unknown", {"kind": "hotline"}, "kind"),
    ("verified in the future", {"verified_at": "2999-01-01"}, "verified_at"),
    ("unexpected field", {"fax": "123"}, "fax"),
]


@pytest.mark.parametrize(("change", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_input_is_a_422_naming_the_field(
    intake: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    got = await intake.post(BASE, json=resource(**change))
    assert got.status_code == 422, got.text
    body = got.json()
    assert body["error"] == "invalid"
    assert field in {p["field"] for p in body["problems"]}, body
    for name, value in change.items():
        if name not in ("kind", "channel") and isinstance(value, str) and len(value) > 3:
            assert value not in got.text  # never echoed
    # The same checks guard a replacement.
    made = (await intake.post(BASE, json=resource())).json()
    path = f"{BASE}/{made['id']}"
    replaced = await intake.put(path, json=resource(**change))
    assert replaced.status_code == 422 and field in {
        p["field"] for p in replaced.json()["problems"]
    }
    assert (await intake.delete(path)).status_code == 204


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"country": "UK"}, "query.country"),
        ({"language": "en_US"}, "query.language"),
        ({"kind": "x"}, "query.kind"),
    ],
)
async def test_a_bad_filter_is_a_422_naming_it(
    intake: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    got = await intake.get(BASE, params=params)
    assert got.status_code == 422, got.text
    assert field in {p["field"] for p in got.json()["problems"]}


def test_default_country_is_us_and_must_be_an_iso_code(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from services.intake.settings import IntakeSettings

    monkeypatch.delenv("DEFAULT_COUNTRY", raising=False)
    assert IntakeSettings().default_country == "US"
    monkeypatch.setenv("DEFAULT_COUNTRY", "gb")
    assert IntakeSettings().default_country == "GB"
    monkeypatch.setenv("DEFAULT_COUNTRY", "UK")
    with pytest.raises(ValidationError, match="use GB"):
        IntakeSettings()
