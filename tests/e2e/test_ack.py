"""Acknowledgement stops every further page, and the case view shows it."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from tests.support.cases import IMMINENT_ASQ, screening
from tests.support.receiver import Receiver
from tests.support.waits import wait_alert, wait_case


async def test_ack_stops_paging_and_shows_in_the_case(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, receiver: Receiver
) -> None:
    sid = (await intake.post("/v1/screenings", json=screening(IMMINENT_ASQ))).json()["id"]
    [page] = await receiver.wait_for(sid)
    alert_id = page.json["alert_id"]

    response = await notify.post(f"/v1/alerts/{alert_id}/ack", json={})
    assert response.status_code == 200
    assert response.json()["status"] == "acknowledged"
    again = await notify.post(f"/v1/alerts/{alert_id}/ack", json={})
    assert again.status_code == 200, "acknowledging twice is harmless"

    await wait_case(
        intake, sid, lambda c: c["alerts"] and c["alerts"][0]["status"] == "acknowledged"
    )
    await asyncio.sleep(1)
    assert len(receiver.for_screening(sid)) == 1


async def test_signed_ack_link_works_once_and_a_forged_one_does_not(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, receiver: Receiver
) -> None:
    sid = (await intake.post("/v1/screenings", json=screening(IMMINENT_ASQ))).json()["id"]
    [page] = await receiver.wait_for(sid)
    link = urlsplit(page.json["ack_url"])
    path_and_query = f"{link.path}?{link.query}"

    forged = path_and_query.replace("sig=", "sig=0")
    assert (await notify.post(forged)).status_code == 403
    shown = await notify.get(path_and_query)
    assert shown.status_code == 200 and "Acknowledge" in shown.text
    alert = (await notify.get(f"/v1/alerts/{page.json['alert_id']}")).json()
    assert alert["status"] != "acknowledged", "opening the link (or a link preview) does not ack"

    acked = await notify.post(path_and_query)
    assert acked.status_code == 200
    assert acked.json()["acknowledged_by"] == "ack_link"


async def test_a_failed_attempt_is_retried_until_the_page_arrives(
    intake: httpx.AsyncClient, notify: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail_next(500, 503)
    sid = (await intake.post("/v1/screenings", json=screening(IMMINENT_ASQ))).json()["id"]
    pages = await receiver.wait_for(sid, count=3, timeout=10)
    assert len(pages) == 3
    assert len({p.headers["x-triage-event-id"] for p in pages}) == 1, "one event id across retries"
    alert = await wait_alert(notify, pages[0].json["alert_id"], lambda a: a["status"] != "pending")
    assert alert["status"] == "delivered"
    assert [a["outcome"] for a in alert["attempts"]] == [
        "temporary_failure",
        "temporary_failure",
        "delivered",
    ]
