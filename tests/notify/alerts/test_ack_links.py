"""Ack links are signed with a key of their own: a pager gateway, which holds the webhook secret,
cannot mint one. A forged link counts as a bad credential from its address, its refusals reach
the trail at a bounded rate, and a client's correlation id is kept only when plain and short."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from deploy.localstack import free_port
from tests.conftest import WEBHOOK_SECRET
from tests.support.cases import IMMINENT_ASQ, screening
from tests.support.keys import SUPERVISOR
from tests.support.receiver import Receiver
from tests.support.services import ServiceProcesses

#: A secret nobody uses: a link made with it is merely wrong (before and after ack links had a
#: key of their own).
GUESS = "a-guess"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _forged(alert_id: str, secret: str = WEBHOOK_SECRET) -> str:
    """A link signed as ack links were before they had a key of their own: with the webhook
    secret, which every pager gateway holds."""
    expires = int(time.time()) + 3600
    sig = hmac.new(secret.encode(), f"ack.{alert_id}.{expires}".encode(), hashlib.sha256)
    return f"/v1/alerts/{alert_id}/ack?expires={expires}&sig={sig.hexdigest()}"


async def _page(intake: httpx.AsyncClient, receiver: Receiver) -> tuple[str, str]:
    """A fresh imminent alert's page: (alert id, the path and query of its ack link)."""
    sid = (await intake.post("/v1/screenings", json=screening(IMMINENT_ASQ))).json()["id"]
    [page] = await receiver.wait_for(sid, timeout=10)
    link = urlsplit(page.json["ack_url"])
    return page.json["alert_id"], f"{link.path}?{link.query}"


async def _entries(intake: httpx.AsyncClient, count: int, **filters: str) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        response = await intake.get("/v1/audit", params=filters, headers=SUPERVISOR)
        assert response.status_code == 200, response.text
        if len(response.json()) >= count or time.monotonic() > deadline:
            return list(response.json())
        await asyncio.sleep(0.1)


async def test_a_link_signed_with_the_webhook_secret_is_refused_and_a_real_one_works(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, receiver: Receiver
) -> None:
    alert_id, link = await _page(intake, receiver)
    forged = _forged(alert_id)
    anonymous = {"Authorization": ""}
    assert (await notify.get(forged, headers=anonymous)).status_code == 403
    assert (await notify.post(forged, headers=anonymous)).status_code == 403
    alert = (await notify.get(f"/v1/alerts/{alert_id}")).json()
    assert alert["status"] != "acknowledged"
    assert parse_qs(urlsplit(link).query)["sig"] != parse_qs(urlsplit(forged).query)["sig"]

    acked = await notify.post(link, headers=anonymous)
    assert acked.status_code == 200 and acked.json()["acknowledged_by"] == "ack_link"


@pytest.fixture(scope="module")
def limited_notify(
    services: ServiceProcesses, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    """A notify replica of its own whose limits are low: five bad credentials (or links) a day
    from one address, three refusals a day recorded per address. (A day: the sliding window
    weighs the previous one, so a shorter one could straddle a boundary on a loaded machine.)"""
    procs = ServiceProcesses(
        env={**services.env, "AUTH_FAILURE_LIMIT": "5/day", "AUDIT_REFUSAL_LIMIT": "3/day"},
        ports={"notify": free_port()},
        log_dir=tmp_path_factory.mktemp("limited-notify"),
    )
    procs.start("notify")
    yield procs
    procs.stop()


async def test_forged_links_are_slowed_like_bad_credentials_and_fill_no_trail(
    intake: httpx.AsyncClient, receiver: Receiver, limited_notify: ServiceProcesses
) -> None:
    alert_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=limited_notify.url("notify"), timeout=10) as client:
        answers = [await client.post(_forged(alert_id, GUESS)) for _ in range(8)]
        assert [a.status_code for a in answers] == [403] * 5 + [429] * 3
        assert int(answers[-1].headers["retry-after"]) >= 1
        # A real link from the same address still works.
        _, link = await _page(intake, receiver)
        acked = await client.post(link)
        assert acked.status_code == 200, acked.text
        assert acked.json()["acknowledged_by"] == "ack_link"
    # Three refusals recorded (AUDIT_REFUSAL_LIMIT), not five, nor eight.
    got = await _entries(intake, 4, resource=f"alert/{alert_id}")
    await asyncio.sleep(2)  # anything more would have arrived by now
    got = await _entries(intake, 4, resource=f"alert/{alert_id}")
    assert len(got) == 3, got
    assert {(e["actor"], e["outcome"]) for e in got} == {("signed-link", "denied")}


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("call-7:desk.4_b", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("Jane Doe rang back", False),
        ("ok\tbut-a-tab", False),
        ("ok/../../etc", False),
    ],
)
async def test_a_correlation_id_is_kept_only_when_plain_and_short(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, given: str, kept: bool
) -> None:
    alert_id = str(uuid.uuid4())
    refused = await notify.post(_forged(alert_id, GUESS), headers={"X-Correlation-Id": given})
    assert refused.status_code == 403
    [entry] = await _entries(intake, 1, resource=f"alert/{alert_id}")
    if kept:
        assert entry["correlation_id"] == given
    else:
        assert entry["correlation_id"] != given and UUID.fullmatch(entry["correlation_id"])
