"""Caring Contacts end to end, through the local SMS provider (deploy/phones): a flagged
screening's follow-up, consent, the first caring message on the person's phone, a risky reply
paging the on-call clinician; STOP ending everything at once; Twilio's webhooks refused unless
signed for intake's public URL.

The session's intake is restarted for this module with an SMS account (the local provider's)
and the caring number, whose "message comes in" webhook is intake's POST /v1/twilio/sms.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from fhir.resources.R4B.bundle import Bundle
from twilio.request_validator import RequestValidator

from deploy.localstack import free_port
from services.intake.follow_ups import replies
from services.intake.follow_ups.reply_check import Verdict
from shared.db import create_engine, create_session_factory, transaction
from shared.phi import RING, KeyRing
from tests.intake.follow_ups.test_follow_ups import open_follow_up
from tests.support.keys import CLINICIAN, HOTLINE, PHI_KEYS
from tests.support.receiver import Receiver
from tests.support.services import ROOT, ServiceProcesses

ACCOUNT = "AC" + secrets.token_hex(16)
TOKEN = secrets.token_hex(16)
PREVIOUS_TOKEN = secrets.token_hex(16)
CARING = "+15555550101"


class Mailbox:
    """The SMTP server's handler (aiosmtpd): keeps every message it accepts."""

    def __init__(self) -> None:
        self.got: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.content)
        self.got.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpt, m in self.got if address in rcpt]


@dataclass
class Stack:
    phones_url: str
    intake_url: str
    database_url: str
    mailbox: Mailbox


@dataclass
class Caring:
    phones: httpx.AsyncClient
    intake_url: str
    database_url: str


@pytest.fixture(scope="module")
def caring_stack(
    services: ServiceProcesses, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    port = free_port()
    intake_url = services.url("intake")
    log = tmp_path_factory.mktemp("phones") / "phones.log"
    phones_env = {
        **services.env_for(),
        "PHONES_PORT": str(port),
        "PHONES_ACCOUNT_SID": ACCOUNT,
        "PHONES_AUTH_TOKEN": TOKEN,
        "PHONES_NUMBERS": f"{CARING}={intake_url}/v1/twilio/sms",
    }
    with log.open("ab") as out:
        phones = subprocess.Popen(
            [sys.executable, "-m", "deploy.phones"],
            cwd=ROOT,
            env=phones_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    extra = {
        # Caring Contacts by email go through this SMTP server.
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_FROM": "crisis-line@clinic.example.org",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_AUTH_TOKEN_PREVIOUS": PREVIOUS_TOKEN,
        "TWILIO_API_BASE": f"http://127.0.0.1:{port}",
        "CARING_FROM_NUMBER": CARING,
        "INTAKE_PUBLIC_URL": intake_url,
    }
    saved = dict(services.env)
    services.kill("intake", signal.SIGTERM)
    services.env.update(extra)
    services.start("intake")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/_local/phones").status_code == 200:
                break
        time.sleep(0.05)
    try:
        yield Stack(f"http://127.0.0.1:{port}", intake_url, services.env["DATABASE_URL"], mailbox)
    finally:
        smtp.stop()
        phones.send_signal(signal.SIGTERM)
        phones.wait(timeout=20)
        services.kill("intake", signal.SIGTERM)
        services.env.clear()
        services.env.update(saved)
        services.start("intake")


@pytest.fixture
async def caring(caring_stack: Stack) -> AsyncIterator[Caring]:
    async with httpx.AsyncClient(base_url=caring_stack.phones_url, timeout=10) as phones:
        yield Caring(phones, caring_stack.intake_url, caring_stack.database_url)


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def enrol(
    intake: httpx.AsyncClient, phone: str, language: str = "en"
) -> tuple[str, str, dict]:
    sid, case = await open_follow_up(intake)
    fid = case["follow_up"]["id"]
    zone = "America/New_York" if language == "en" else "Europe/Madrid"
    response = await intake.post(
        f"/v1/follow-ups/{fid}/caring-contacts",
        json={"channel": "sms", "phone": phone, "time_zone": zone, "language": language},
        headers=HOTLINE,
    )
    assert response.status_code == 201, response.text
    return sid, fid, response.json()["caring_contacts"][-1]


async def texts_on(caring: Caring, phone: str) -> list[dict]:
    got = await caring.phones.get(f"/_local/phones/{phone}")
    if got.status_code != 200:
        return []
    return [m for m in got.json()["messages"] if m["direction"] == "outbound-api"]


async def due_now(db: asyncpg.Pool, enrolment: dict, *sequences: int) -> None:
    await db.execute(
        "UPDATE intake.caring_messages SET due_at = now() WHERE contact_id = $1"
        " AND sequence = ANY($2::int[])",
        uuid.UUID(enrolment["id"]),
        list(sequences),
    )


async def reply_alerts(receiver: Receiver, sid: str) -> list:
    return [
        r
        for r in receiver.for_screening(sid)
        if any(str(x).startswith("caring_reply:") for x in r.json.get("reasons", []))
    ]


async def test_flagged_screening_to_a_caring_text_and_a_risky_reply_pages_the_clinician(
    caring: Caring, intake: httpx.AsyncClient, db: asyncpg.Pool, receiver: Receiver
) -> None:
    phone = "+12015550142"
    sid, fid, enrolment = await enrol(intake, phone)
    follow_up = (await intake.get(f"/v1/follow-ups/{fid}")).json()
    assert follow_up["status"] == "open" and follow_up["due_at"], "the follow-up is due"
    await due_now(db, enrolment, 1)

    texts = await eventually(lambda: texts_on(caring, phone))
    (text,) = texts
    assert text["from"] == CARING and text["to"] == phone
    assert "crisis line team" in text["body"] and "STOP" in text["body"]

    async def sent() -> dict | None:
        got = (await intake.get(f"/v1/follow-ups/{fid}")).json()
        first = got["caring_contacts"][0]["messages"][0]
        return first if first["provider_status"] == "delivered" else None

    first = await eventually(sent)
    assert first["status"] == "sent" and first["provider_sid"] == text["sid"] and first["sent_at"]

    replied = await caring.phones.post(
        f"/_local/phones/{phone}/reply", json={"Body": "I want to die"}
    )
    assert replied.status_code == 200
    assert replied.json()["callbacks"][0]["status_code"] == 200, "intake accepted the signature"

    alerts = await eventually(lambda: reply_alerts(receiver, sid))
    page = alerts[0].json
    assert page["risk_level"] == "high" and page["screening_id"] == sid
    assert page["reasons"] == ["caring_reply:risk_words:en"]
    assert "die" not in alerts[0].body.decode(), "no PHI in the page"

    got = (await intake.get(f"/v1/follow-ups/{fid}")).json()
    assert [t["kind"] for t in got["tasks"]] == ["reply"], "every reply is a task for the team"
    (reply,) = got["replies"]
    assert reply["body"] == "I want to die" and reply["classification"] == "risk"
    assert got["tasks"][0]["reply_id"] == reply["id"]
    stored = await db.fetchval(
        "SELECT body FROM intake.caring_replies WHERE follow_up_id = $1", uuid.UUID(fid)
    )
    assert stored.startswith("phi1:"), "the reply is encrypted at rest"


async def test_a_spanish_risky_reply_pages_and_a_routine_one_does_not(
    caring: Caring, intake: httpx.AsyncClient, db: asyncpg.Pool, receiver: Receiver
) -> None:
    phone = "+34612345601"
    sid, fid, enrolment = await enrol(intake, phone, "es")
    await due_now(db, enrolment, 1)
    (text,) = await eventually(lambda: texts_on(caring, phone))
    assert "ALTO" in text["body"]
    await caring.phones.post(f"/_local/phones/{phone}/reply", json={"Body": "Gracias 🙂"})
    await caring.phones.post(
        f"/_local/phones/{phone}/reply", json={"Body": "Ya no puedo más, QUIERO MORÍR."}
    )
    alerts = await eventually(lambda: reply_alerts(receiver, sid))
    await asyncio.sleep(0.5)
    alerts = await reply_alerts(receiver, sid)
    assert len(alerts) == 1, "one alert, for the risky reply only"
    assert alerts[0].json["reasons"] == ["caring_reply:risk_words:es"]
    got = (await intake.get(f"/v1/follow-ups/{fid}")).json()
    assert [t["kind"] for t in got["tasks"]] == ["reply", "reply"]


async def test_a_reply_the_check_fails_on_pages_too(
    caring: Caring, intake: httpx.AsyncClient, db: asyncpg.Pool, receiver: Receiver
) -> None:
    phone = "+12015550143"
    sid, _, _ = await enrol(intake, phone)

    def broken(body: str) -> Verdict:
        raise UnicodeError("the check could not read it")

    engine = create_engine(caring.database_url, pool_size=2)
    sessions = create_session_factory(engine, info={RING: KeyRing.parse(PHI_KEYS)})
    try:
        async with transaction(sessions) as session:
            reply = await replies.receive(
                session,
                provider_sid="SM" + secrets.token_hex(16),
                number=phone,
                body="hmm",
                check=broken,
            )
        assert reply is not None and reply.classification == "unclassified"
    finally:
        await engine.dispose()
    alerts = await eventually(lambda: reply_alerts(receiver, sid))
    assert alerts[0].json["reasons"] == ["caring_reply:check_failed"]


async def test_stop_cancels_every_pending_message_and_nothing_is_sent_after(
    caring: Caring, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    phone = "+12015550144"
    _, fid, enrolment = await enrol(intake, phone)
    await due_now(db, enrolment, 1)
    await eventually(lambda: texts_on(caring, phone))
    await caring.phones.post(f"/_local/phones/{phone}/reply", json={"Body": "  Stop! "})
    got = (await intake.get(f"/v1/follow-ups/{fid}")).json()
    (enrolment,) = got["caring_contacts"]
    assert enrolment["status"] == "opted_out" and enrolment["ended_reason"] == "stop_word"
    statuses = [m["status"] for m in enrolment["messages"]]
    assert statuses == ["sent"] + ["cancelled"] * 11
    # Even a message made pending and due again behind the API's back is not sent: the
    # sender's claim and its send both require an active enrolment.
    await db.execute(
        "UPDATE intake.caring_messages SET status = 'pending', due_at = now()"
        " WHERE contact_id = $1 AND sequence = 2",
        uuid.UUID(enrolment["id"]),
    )
    await asyncio.sleep(1.5)
    assert len(await texts_on(caring, phone)) == 1, "nothing is sent after STOP"
    assert got["tasks"][0]["kind"] == "reply"


async def test_staff_withdrawal_cancels_everything_and_nothing_is_sent(
    caring: Caring, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    phone = "+12015550145"
    _, fid, enrolment = await enrol(intake, phone)
    assert (
        await intake.delete(f"/v1/follow-ups/{fid}/caring-contacts", headers=CLINICIAN)
    ).status_code == 204
    await db.execute(
        "UPDATE intake.caring_messages SET due_at = now() WHERE contact_id = $1",
        uuid.UUID(enrolment["id"]),
    )
    await asyncio.sleep(1.5)
    assert await texts_on(caring, phone) == []


async def test_caring_messages_by_email_go_through_the_smtp_server_and_stop_on_withdrawal(
    caring_stack: Stack, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    address = f"person-{uuid.uuid4().hex[:6]}@example.org"
    _, case = await open_follow_up(intake)
    fid = case["follow_up"]["id"]
    consent = {"channel": "email", "email": address, "time_zone": "Europe/Madrid", "language": "es"}
    made = await intake.post(f"/v1/follow-ups/{fid}/caring-contacts", json=consent, headers=HOTLINE)
    assert made.status_code == 201, made.text
    enrolment = made.json()["caring_contacts"][-1]
    await due_now(db, enrolment, 1)
    [message] = await eventually(
        lambda: asyncio.sleep(0.05, result=caring_stack.mailbox.to(address))
    )
    assert message["Subject"] == "Pensamos en ti"
    assert message["From"] == "crisis-line@clinic.example.org"
    body = message.get_content()
    assert "Hola" in body and "ALTO" not in body, "an email says how stopping works by email"
    assert "equipo de la línea de crisis" in body
    row = await db.fetchrow(
        "SELECT status, sent_at FROM intake.caring_messages WHERE contact_id = $1 AND sequence = 1",
        uuid.UUID(enrolment["id"]),
    )
    assert row["status"] == "sent" and row["sent_at"] is not None
    # Withdrawn by staff: nothing more goes, by email either.
    assert (
        await intake.delete(f"/v1/follow-ups/{fid}/caring-contacts", headers=CLINICIAN)
    ).status_code == 204
    await due_now(db, enrolment, 2, 3)
    await asyncio.sleep(1.5)
    assert len(caring_stack.mailbox.to(address)) == 1


async def test_webhooks_without_a_valid_signature_are_refused_and_audited(
    caring: Caring, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    url = f"{caring.intake_url}/v1/twilio/sms"
    form = {"MessageSid": "SM" + secrets.token_hex(16), "From": "+12015550146", "Body": "stop"}
    async with httpx.AsyncClient(timeout=10) as client:
        unsigned = await client.post(url, data=form)
        assert unsigned.status_code == 403
        # Signed over another host than the public URL (what a Host header would claim).
        forged = RequestValidator(TOKEN).compute_signature(
            url.replace("127.0.0.1", "localhost"), form
        )
        wrong_host = await client.post(url, data=form, headers={"X-Twilio-Signature": forged})
        assert wrong_host.status_code == 403
        other_token = RequestValidator("x" * 32).compute_signature(url, form)
        assert (
            await client.post(url, data=form, headers={"X-Twilio-Signature": other_token})
        ).status_code == 403
        n = await db.fetchval(
            "SELECT count(*) FROM intake.caring_replies WHERE provider_sid = $1", form["MessageSid"]
        )
        assert n == 0, "nothing changes"
        # The previous token still works (a rotation in progress).
        previous = RequestValidator(PREVIOUS_TOKEN).compute_signature(url, form)
        accepted = await client.post(url, data=form, headers={"X-Twilio-Signature": previous})
        assert accepted.status_code == 200 and "<Response" in accepted.text
    refusals = await eventually(
        lambda: db.fetchval(
            "SELECT count(*) FROM intake.audit_log"
            " WHERE action = 'twilio_sms' AND outcome = 'denied'"
        )
    )
    assert refusals >= 3


async def test_the_providers_opt_out_error_ends_the_enrolment(
    caring: Caring, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # The phone texted STOP to the caring number during an earlier enrolment; staff enrol the
    # person again, and the provider refuses the first message with 21610.
    phone = "+12015550147"
    _, _, first = await enrol(intake, phone)
    await due_now(db, first, 1)
    await eventually(lambda: texts_on(caring, phone))
    await caring.phones.post(f"/_local/phones/{phone}/reply", json={"Body": "STOP"})
    _, fid, again = await enrol(intake, phone)
    await due_now(db, again, 1)

    async def ended() -> dict | None:
        got = (await intake.get(f"/v1/follow-ups/{fid}")).json()
        enrolment = got["caring_contacts"][-1]
        return enrolment if enrolment["status"] == "opted_out" else None

    enrolment = await eventually(ended)
    assert enrolment["ended_reason"] == "provider_opt_out"
    assert [m["status"] for m in enrolment["messages"]] == ["failed"] + ["cancelled"] * 11
    assert enrolment["messages"][0]["provider_status"] == "opted_out"
    assert len(await texts_on(caring, phone)) == 1


async def test_the_schedule_and_messages_as_fhir(
    caring: Caring, intake: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    phone = "+12015550148"
    _, fid, enrolment = await enrol(intake, phone)
    await due_now(db, enrolment, 1)
    await eventually(lambda: texts_on(caring, phone))

    async def sent() -> dict | None:
        response = await intake.get(f"/v1/follow-ups/{fid}/fhir")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+json")
        body = response.json()
        kinds = [e["resource"]["resourceType"] for e in body["entry"]]
        return body if kinds == ["CommunicationRequest", "Communication"] else None

    bundle = await eventually(sent)
    Bundle.model_validate(bundle)
    request, message = (e["resource"] for e in bundle["entry"])
    assert request["status"] == "active" and request["occurrencePeriod"]["start"]
    assert request["medium"][0]["coding"][0]["code"] == "SMSWRIT"
    assert request["subject"]["identifier"]["value"].startswith("test-")
    assert message["status"] == "completed"
    assert message["basedOn"] == [{"reference": f"CommunicationRequest/{enrolment['id']}"}]
    assert message["sent"] and message["identifier"][0]["value"].startswith("SM")
    assert "2015550148" not in str(bundle), "no number in the FHIR resources"
    await intake.delete(f"/v1/follow-ups/{fid}/caring-contacts")
    after = (await intake.get(f"/v1/follow-ups/{fid}/fhir")).json()
    assert after["entry"][0]["resource"]["status"] == "revoked"
