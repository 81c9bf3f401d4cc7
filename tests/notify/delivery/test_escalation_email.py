"""Email pages through a real local SMTP server (aiosmtpd), with the case link and no PHI.

The session's notify has no SMTP server configured, so this module runs its own notify with one
(and the session's notify stopped meanwhile, so that it cannot claim the email pages).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from deploy.localstack import free_port
from tests.support.cases import HIGH_CSSRS, screening
from tests.support.keys import ADMIN
from tests.support.pagers import Pagers
from tests.support.receiver import Receiver
from tests.support.roster import Roster
from tests.support.services import ServiceProcesses
from tests.support.solo import SoloNotify, session_notify_stopped

INTAKE_PUBLIC_URL = "https://triage.example.org"
LEASE = 3.0


@dataclass
class Inbox:
    """The SMTP server's handler: keeps every message it accepts."""

    got: list[tuple[float, list[str], EmailMessage]] = field(default_factory=list)
    #: Seconds the server takes to accept a recipient (a slow or overloaded mail server).
    rcpt_delay: float = 0.0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        await asyncio.sleep(self.rcpt_delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it so
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.got.append((time.time(), list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted"

    def to(self, address: str, screening_id: str) -> list[tuple[float, EmailMessage]]:
        return [
            (at, m)
            for at, rcpt, m in self.got
            if address in rcpt and screening_id in m.get_content()
        ]

    async def wait_for(self, address: str, screening_id: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.to(address, screening_id):
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no email to {address} in {timeout} s")


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="module")
async def solo(
    services: ServiceProcesses,
    receiver: Receiver,
    inbox: tuple[Inbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SoloNotify]:
    async with session_notify_stopped(services, receiver):
        notify = SoloNotify(
            base_env=services.env,
            log_dir=tmp_path_factory.mktemp("email-notify"),
            extra_env={
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(inbox[1]),
                "SMTP_FROM": "pages@triage.example.org",
                "INTAKE_PUBLIC_URL": INTAKE_PUBLIC_URL,
                # A send may take 0.8 of it at most, every SMTP step included.
                "DELIVERY_LEASE_SECONDS": str(LEASE),
            },
        )
        await notify.start(wait_for="/readyz")
        try:
            yield notify
        finally:
            await notify.stop()


@pytest.fixture
async def client(solo: SoloNotify) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=solo.url, timeout=10, headers=ADMIN) as notify:
        yield notify


@pytest.fixture
async def roster(
    client: httpx.AsyncClient, pagers: Pagers, db: asyncpg.Pool
) -> AsyncIterator[Roster]:
    on_call = Roster(client, pagers, db)
    yield on_call
    await on_call.cleanup()


async def test_an_email_page_has_the_case_and_ack_links_and_no_phi(
    intake: httpx.AsyncClient,
    client: httpx.AsyncClient,
    roster: Roster,
    inbox: tuple[Inbox, int],
    db: asyncpg.Pool,
) -> None:
    doc = await roster.clinician("dr-email", email="oncall@clinic.example.org", webhook=False)
    await roster.policy(["high"], [{"clinician_ids": [doc.id], "delay_seconds": 60}])
    body = screening(
        HIGH_CSSRS,
        contact={"name": "Jo Caller", "phone": "+1 555 0100"},
        notes="lives alone with her dog Rex",
    )
    sid = (await intake.post("/v1/screenings", json=body)).json()["id"]

    [(_, message)] = await inbox[0].wait_for("oncall@clinic.example.org", sid)
    text = message.get_content()
    assert f"{INTAKE_PUBLIC_URL}/v1/screenings/{sid}" in text, "the case link"
    assert "HIGH risk" in text and "urgent" in text and "C-SSRS" in text
    assert message["From"] == "pages@triage.example.org"
    everything = message.as_string()
    for phi in ("Jo Caller", "555 0100", "Rex", "lives alone"):
        assert phi not in everything, "no PHI in an email page"

    ack_url = next(w for w in text.split() if "/ack?" in w)
    link = urlsplit(ack_url)
    acked = await client.post(f"{link.path}?{link.query}")
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "ack_link"
    alert = (await client.get(f"/v1/alerts/{acked.json()['id']}")).json()
    assert [a["target"] for a in alert["attempts"]] == ["mailto:oncall@clinic.example.org"]
    assert message["X-Triage-Event-Id"], "a stable id across retries, for deduplication"
    # The clinician's address is stored encrypted wherever it is kept: their contact method,
    # the planned page and the recorded attempt.
    stored = await db.fetch(
        "SELECT m.address AS value FROM notify.contact_methods m WHERE m.clinician_id = $1"
        " UNION ALL SELECT d.target FROM notify.deliveries d WHERE d.alert_id = $2"
        " UNION ALL SELECT t.target FROM notify.delivery_attempts t"
        "  JOIN notify.deliveries d ON d.id = t.delivery_id WHERE d.alert_id = $2",
        uuid.UUID(doc.id),
        uuid.UUID(acked.json()["id"]),
    )
    assert len(stored) == 3 and all(r["value"].startswith("phi1:") for r in stored)


async def test_contact_methods_go_in_order_with_their_delays_until_acknowledged(
    intake: httpx.AsyncClient,
    client: httpx.AsyncClient,
    roster: Roster,
    pagers: Pagers,
    inbox: tuple[Inbox, int],
) -> None:
    ana = await roster.clinician("ana", email="ana@clinic.example.org", delay=1)
    ben = await roster.clinician("ben", email="ben@clinic.example.org", delay=3)
    await roster.policy(["high"], [{"clinician_ids": [ana.id, ben.id], "delay_seconds": 60}])
    sid = (await intake.post("/v1/screenings", json=screening(HIGH_CSSRS))).json()["id"]

    [paged] = await pagers.wait_for(ana.pager, sid)
    [(mailed_at, _)] = await inbox[0].wait_for("ana@clinic.example.org", sid)
    # Both are planned from the step's start; the webhook's own latency (a loaded machine) is
    # in the difference, so it may fall a little short of the 1 s delay.
    assert 0.5 < mailed_at - paged.at < 2.0, "the email follows the webhook after its 1 s delay"

    # Ben's pager was paged too; acknowledging now cancels his email, due 3 s after the page.
    await pagers.wait_for(ben.pager, sid)
    assert (await client.post(f"/v1/alerts/{paged.json['alert_id']}/ack", json={})).is_success
    await asyncio.sleep(max(0.0, paged.at + 3.5 - time.time()))
    assert inbox[0].to("ben@clinic.example.org", sid) == [], "no email after the ack"


async def test_a_mail_server_slower_than_the_lease_never_gets_a_page_twice(
    intake: httpx.AsyncClient,
    roster: Roster,
    inbox: tuple[Inbox, int],
    db: asyncpg.Pool,
) -> None:
    """Each SMTP step within its own timeout, the whole exchange longer than the page's lease:
    the page was claimed again and sent a second time meanwhile. Now the exchange as a whole is
    bounded below the lease: the slow attempts fail and are retried, and the one that gets
    through is the only one."""
    address = f"slow-{uuid.uuid4().hex[:6]}@clinic.example.org"
    doc = await roster.clinician("dr-slow", email=address, webhook=False)
    await roster.policy(["high"], [{"clinician_ids": [doc.id], "delay_seconds": 60}])
    handler = inbox[0]
    handler.rcpt_delay = LEASE + 0.5
    try:
        sid = (await intake.post("/v1/screenings", json=screening(HIGH_CSSRS))).json()["id"]
        await asyncio.sleep(LEASE * 2 + 1)
    finally:
        handler.rcpt_delay = 0.0
    await handler.wait_for(address, sid, timeout=15)
    await asyncio.sleep(LEASE)  # a second copy, were one on its way, would be in by now
    assert len(handler.to(address, sid)) == 1, "one page, sent once"
    errors = await db.fetch(
        "SELECT a.error FROM notify.delivery_attempts a JOIN notify.deliveries d"
        " ON d.id = a.delivery_id JOIN notify.alerts al ON al.id = d.alert_id"
        " WHERE al.screening_id = $1 AND a.outcome <> 'delivered'",
        uuid.UUID(sid),
    )
    assert errors and all(e["error"] == f"no answer in {LEASE * 0.8:g} s" for e in errors)
