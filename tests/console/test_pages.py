"""The console's gate without a browser: the page table (deny by default), the session cookie,
CSRF, the security headers, and that the console needs no database and no topic."""

from __future__ import annotations

import ast
import itertools
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from services.console import web
from services.console.app import create_app
from services.console.instruments import INSTRUMENTS, FormProblem, answers_from_form
from services.console.pages import PAGES
from services.console.session import SessionSealer, new_session_key
from services.console.settings import ConsoleSettings
from shared.auth.guard import api_routes
from tests.support.keys import KEYS
from tests.support.services import ServiceProcesses

CONSOLE = Path(__file__).resolve().parents[2] / "services" / "console"


def test_every_page_is_in_the_table_and_a_missing_one_is_refused() -> None:
    app = create_app()
    routes = {(m, r.path) for r in api_routes(app.routes) for m in r.methods}
    assert routes == set(PAGES)
    extra = FastAPI()
    router = APIRouter(route_class=web.page_route({}))

    @router.get("/forgotten")
    async def forgotten() -> dict[str, str]:
        return {}

    extra.include_router(router)
    with pytest.raises(RuntimeError, match="missing from the page table"):
        web.require_every_page_listed(extra, {})


def test_the_console_imports_no_database_or_kafka_client() -> None:
    """It reaches data through the services' HTTP APIs only."""
    forbidden = (
        "sqlalchemy",
        "asyncpg",
        "aiokafka",
        "shared.db",
        "shared.kafka",
        "shared.outbox",
        "shared.runtime",
        "services.intake",
        "services.notify",
        "services.risk",
    )
    for path in CONSOLE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"
    for script in (CONSOLE / "static").glob("console.js"):
        text = script.read_text()
        assert "fetch(" not in text and "XMLHttpRequest" not in text


def test_a_session_ends_after_idle_time_and_at_most_after_its_lifetime() -> None:
    sealer = SessionSealer(new_session_key(), idle_seconds=900, max_seconds=12 * 3600)
    session = sealer.start(credential="k" * 30, name="dr-lee", role="clinician", method="api-key")
    cookie = sealer.seal(session)
    now = time.time()
    assert sealer.open(cookie, now=now + 899) is not None
    assert sealer.open(cookie, now=now + 901) is None, "15 minutes idle"
    kept_busy = sealer.seal(session.touched(now + 12 * 3600 - 60))
    assert sealer.open(kept_busy, now=now + 12 * 3600 - 30) is not None
    assert sealer.open(kept_busy, now=now + 12 * 3600 + 1) is None, "12 hours at most"
    other = SessionSealer(new_session_key(), idle_seconds=900, max_seconds=3600)
    assert other.open(cookie) is None, "another console's key cannot open it"
    assert sealer.open(cookie[:-4] + "AAAA") is None, "tampered"
    assert "k" * 30 not in cookie and "k" * 30 not in repr(session)


def test_session_keys_that_are_not_keys_are_refused_without_being_echoed() -> None:
    with pytest.raises(ValueError) as refused:
        SessionSealer("not-a-key-at-all-secret", idle_seconds=1, max_seconds=2)
    assert "not-a-key-at-all-secret" not in str(refused.value)


@pytest.mark.parametrize(
    ("instrument", "form", "answers"),
    [
        (
            "cssrs_screener",
            {
                "wish_dead": "true",
                "suicidal_thoughts": "false",
                "method": "true",
                "behavior": "false",
                "behavior_past_3_months": "true",
            },
            {"wish_dead": True, "suicidal_thoughts": False, "behavior": False},
        ),
        (
            "cssrs_screener",
            {
                "wish_dead": "true",
                "suicidal_thoughts": "true",
                "method": "false",
                "intent": "true",
                "plan": "false",
                "behavior": "true",
            },
            {
                "wish_dead": True,
                "suicidal_thoughts": True,
                "method": False,
                "intent": True,
                "plan": False,
                "behavior": True,
            },
        ),
        (
            "asq",
            {
                "wished_dead": "false",
                "better_off_dead": "false",
                "thoughts_past_week": "false",
                "ever_attempted": "false",
                "thoughts_now": "true",
            },
            {
                "wished_dead": False,
                "better_off_dead": False,
                "thoughts_past_week": False,
                "ever_attempted": False,
            },
        ),
        (
            "asq",
            {
                "wished_dead": "refused",
                "better_off_dead": "false",
                "thoughts_past_week": "false",
                "ever_attempted": "false",
                "thoughts_now": "false",
            },
            {
                "wished_dead": "refused",
                "better_off_dead": False,
                "thoughts_past_week": False,
                "ever_attempted": False,
                "thoughts_now": False,
            },
        ),
        (
            "phq9",
            {f"item_{n}": str(n % 4) for n in range(1, 10)},
            {"items": [n % 4 for n in range(1, 10)]},
        ),
    ],
)
def test_questions_not_asked_are_not_sent(
    instrument: str, form: dict[str, str], answers: dict[str, object]
) -> None:
    """What a browser without the script would send: the same answers as with it."""
    assert answers_from_form(INSTRUMENTS[instrument], form) == answers


def test_a_question_asked_and_not_answered_is_named() -> None:
    with pytest.raises(FormProblem) as problem:
        answers_from_form(
            INSTRUMENTS["cssrs_screener"],
            {"wish_dead": "true", "suicidal_thoughts": "true", "behavior": "no"},
        )
    assert problem.value.fields == ["method", "intent", "plan", "behavior"]


@pytest.fixture
async def signed_in(console: ServiceProcesses) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a clinician's session cookie."""
    async with httpx.AsyncClient(base_url=console.url("console"), timeout=10) as client:
        form = await client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = await client.post(
            "/login", data={"key": KEYS["clinician"], "csrf": token.group(1), "next": "/"}
        )
        assert answer.status_code == 200, answer.text
        yield client


async def test_the_session_cookie_and_the_headers_of_every_answer(
    console: ServiceProcesses,
) -> None:
    async with httpx.AsyncClient(base_url=console.url("console"), timeout=10) as client:
        form = await client.get("/login")
        assert form.status_code == 200
        csp = form.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert form.headers["x-content-type-options"] == "nosniff"
        assert form.headers["cache-control"] == "no-store"
        assert "<script>" not in form.text and " on" + "click=" not in form.text
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = await client.post(
            "/login", data={"key": KEYS["clinician"], "csrf": token.group(1), "next": "/"}
        )
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert KEYS["clinician"] not in cookie


async def test_a_bad_key_is_refused_without_echoing_it(console: ServiceProcesses) -> None:
    async with httpx.AsyncClient(base_url=console.url("console"), timeout=10) as client:
        form = await client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        wrong = "ctk_" + "x" * 40
        answer = await client.post("/login", data={"key": wrong, "csrf": token.group(1)})
        assert answer.status_code == 401
        assert wrong not in answer.text and "not accepted" in answer.text
        assert "set-cookie" not in answer.headers or "triage_console=" not in answer.headers.get(
            "set-cookie", ""
        )
        forged = await client.post("/login", data={"key": KEYS["admin"], "csrf": "forged"})
        assert forged.status_code == 403, "the sign-in form has its own CSRF token"


async def test_a_form_without_its_csrf_token_changes_nothing(
    signed_in: httpx.AsyncClient,
) -> None:
    missing = await signed_in.post("/alerts/00000000-0000-0000-0000-000000000000/ack")
    assert missing.status_code == 403 and "Form expired" in missing.text
    page = await signed_in.get("/")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    cross_site = await signed_in.post(
        "/alerts/00000000-0000-0000-0000-000000000000/ack",
        data={"csrf": token.group(1)},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert cross_site.status_code == 403, "a form posted from another site"
    same_site = await signed_in.post(
        "/alerts/00000000-0000-0000-0000-000000000000/ack", data={"csrf": token.group(1)}
    )
    assert same_site.status_code == 404, "with its token, the form reaches notify (no alert)"


async def test_pages_a_role_may_not_open_are_refused(signed_in: httpx.AsyncClient) -> None:
    for path in ("/keys", "/audit"):
        answer = await signed_in.get(path)
        assert answer.status_code == 403, path
    assert (await signed_in.get("/oncall")).status_code == 200


async def test_signed_out_a_page_goes_to_sign_in_and_an_htmx_refresh_redirects_the_page(
    console: ServiceProcesses,
) -> None:
    async with httpx.AsyncClient(base_url=console.url("console"), timeout=10) as client:
        page = await client.get("/cases/00000000-0000-0000-0000-000000000001")
        assert page.status_code == 303
        assert page.headers["location"] == (
            "/login?next=/cases/00000000-0000-0000-0000-000000000001"
        )
        live = await client.get("/alerts/live", headers={"HX-Request": "true"})
        assert live.headers["hx-redirect"] == "/login?next=/"
        elsewhere = await client.get("/login", params={"next": "https://evil.example/"})
        assert 'value="/"' in elsewhere.text, "no open redirect after sign-in"


async def test_the_console_is_ready_without_a_database_or_kafka(console: ServiceProcesses) -> None:
    """Its DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS lead nowhere (tests/console/conftest.py)."""
    async with httpx.AsyncClient(base_url=console.url("console"), timeout=10) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {
            "running": True,
            "intake": True,
            "risk": True,
            "notify": True,
        }


async def test_a_live_refresh_says_when_a_service_cannot_answer() -> None:
    """notify away: the open-alerts list is replaced by a notice (not left looking live), and
    a whole page says so with a 503."""
    settings = ConsoleSettings(
        NOTIFY_URL="http://127.0.0.1:9",
        INTAKE_URL="http://127.0.0.1:9",
        CONSOLE_SESSION_KEYS=new_session_key(),
    )
    app = create_app(settings)
    app.state.console = console = web.Console(settings)
    session = console.sealer.start(
        credential="k" * 30, name="dr-lee", role="clinician", method="api-key"
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://console",
        cookies={console.cookie: console.sealer.seal(session)},
    ) as client:
        live = await client.get("/alerts/live", headers={"HX-Request": "true"})
        assert live.status_code == 200 and "Cannot refresh right now" in live.text
        assert "<html" not in live.text
        page = await client.get("/")
        assert page.status_code == 503 and "notify cannot be reached" in page.text
    await console.upstream.aclose()


@pytest.mark.parametrize("key", ["cssrs_screener", "asq", "phq9"])
def test_the_forms_ask_what_the_validation_expects(key: str) -> None:
    """Over every combination of the gating answers, a form question is shown exactly when
    `shared.instruments.asked` says it is asked, and a form answered "yes" (or the scale's top)
    to everything it shows is accepted by the API's validation."""
    from services.console.instruments import INSTRUMENTS, answers_from_form
    from services.console.instruments import asked as shown
    from shared.instruments import asked, parse_answers

    instrument = INSTRUMENTS[key]
    choices = [[value for value, _ in q.choices] for q in instrument.questions]
    # PHQ-9 has no skip logic: its 4^9 forms need not all be walked.
    for values in itertools.islice(itertools.product(*choices), 5000):
        form = {q.field: v for q, v in zip(instrument.questions, values, strict=True)}
        typed = {f: v == "true" if v in ("true", "false") else v for f, v in form.items()}
        for question in instrument.questions:
            assert shown(question, form) is asked(key, question.field, typed), (
                question.field,
                form,
            )
    filled = {q.field: q.choices[0][0] for q in instrument.questions}  # "true", or the top score
    filled.update({q.field: q.choices[-1][0] for q in instrument.questions if key == "phq9"})
    for question in instrument.questions:
        if not shown(question, filled):
            filled.pop(question.field)
    parse_answers(key, answers_from_form(instrument, filled))
