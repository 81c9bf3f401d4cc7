"""Pages by SMS and voice call through the bundled Twilio stand-in (a real process speaking
Twilio's REST API and signing its webhooks as Twilio does), end to end: a flagged screening,
notify's page to the phone, and what the phone answers."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.support.cases import HIGH_CSSRS, screening
from tests.support.pagers import Pagers
from tests.support.phones import PROVIDER_NUMBER, Phones
from tests.support.roster import Roster, wait_until

PHI = ("Jo Caller", "555 0199", "Rex", "lives alone")


def a_number() -> str:
    """A phone of this test alone (+1 555 and seven random digits)."""
    return "+1555" + "".join(secrets.choice("0123456789") for _ in range(7))


async def phone_clinician(
    notify: httpx.AsyncClient, name: str, methods: list[dict[str, Any]]
) -> str:
    response = await notify.post("/v1/clinicians", json={"name": name, "contact_methods": methods})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def flagged(intake: httpx.AsyncClient) -> str:
    body = screening(
        HIGH_CSSRS,
        contact={"name": "Jo Caller", "phone": "+1 555 0199"},
        notes="lives alone with her dog Rex",
    )
    response = await intake.post("/v1/screenings", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def alert_of(db: asyncpg.Pool, screening_id: str) -> asyncpg.Record:
    return await wait_until(
        lambda: db.fetchrow(
            "SELECT * FROM notify.alerts WHERE screening_id = $1", uuid.UUID(screening_id)
        ),
        what="the alert",
    )


async def alert_status(db: asyncpg.Pool, alert_id: uuid.UUID) -> str:
    return str(await db.fetchval("SELECT status FROM notify.alerts WHERE id = $1", alert_id))


def signed(phones: Phones, url: str, params: dict[str, str], token: str | None = None) -> str:
    return RequestValidator(token or phones.auth_token).compute_signature(url, params)


async def test_a_flagged_screening_texts_the_phone_and_a_reply_of_1_acknowledges(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    phones: Phones,
    db: asyncpg.Pool,
) -> None:
    number = a_number()
    doc = await phone_clinician(notify, "Dr Text", [{"kind": "sms", "address": number}])
    await roster.policy(["high"], [{"clinician_ids": [doc], "delay_seconds": 60}])
    sid = await flagged(intake)

    [text] = await phones.wait_for_text(number)
    alert = await alert_of(db, sid)
    code = alert["reply_code"]
    assert code and len(code) == 4
    assert text["from"] == PROVIDER_NUMBER and text["to"] == number
    assert text["body"].startswith(f"Crisis triage: HIGH risk alert {code}. Reply {code} or 1")
    assert f"/alerts/{alert['id']}" in text["body"], "the console's link"
    assert len(text["body"]) <= 160
    assert not any(phi in text["body"] for phi in PHI), "no PHI in a text"
    # The provider's report delivered the page, and started its acknowledgement deadline.
    page = await wait_until(
        lambda: db.fetchrow(
            "SELECT * FROM notify.deliveries WHERE alert_id = $1 AND status = 'delivered'",
            alert["id"],
        ),
        what="the text delivered",
    )
    assert page["provider_sid"] == text["sid"] and page["provider_status"] == "delivered"
    assert await alert_status(db, alert["id"]) == "delivered"

    await phones.reply(number, "1")
    assert await alert_status(db, alert["id"]) == "acknowledged"
    acked = (await notify.get(f"/v1/alerts/{alert['id']}")).json()
    assert acked["acknowledged_by"] == "Dr Text", "the clinician whose phone replied"
    [answer] = await phones.answers(number)
    assert answer == f"Acknowledged: HIGH alert {code}. Paging stopped."
    assert (
        await db.fetchval("SELECT reply FROM notify.deliveries WHERE alert_id = $1", alert["id"])
        == "1"
    )
    # The trail names the clinician (through Kafka to intake's audit).
    entries = await wait_until(
        lambda: _audit(intake, f"alert/{alert['id']}", "sms_reply"), what="the audit entry"
    )
    assert entries[0]["actor"] == "Dr Text" and entries[0]["outcome"] == "success"
    await asyncio.sleep(1.5)
    assert len(await phones.texts(number)) == 1, "no page after the acknowledgement"


async def _audit(intake: httpx.AsyncClient, resource: str, action: str) -> list[dict[str, Any]]:
    response = await intake.get("/v1/audit", params={"resource": resource, "action": action})
    assert response.status_code == 200, response.text
    return list(
        response.json()["entries"] if isinstance(response.json(), dict) else response.json()
    )


async def test_a_code_acknowledges_its_alert_and_ack_all_every_one(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    phones: Phones,
    db: asyncpg.Pool,
) -> None:
    number = a_number()
    doc = await phone_clinician(notify, "Dr Codes", [{"kind": "sms", "address": number}])
    await roster.policy(["high"], [{"clinician_ids": [doc], "delay_seconds": 60}])
    first, second, third = [await alert_of(db, await flagged(intake)) for _ in range(3)]
    await phones.wait_for_text(number, count=3)
    codes = {
        a["id"]: (await alert_of(db, str(a["screening_id"])))["reply_code"]
        for a in (first, second, third)
    }
    assert len(set(codes.values())) == 3, "each open alert its own code"

    await phones.reply(number, f" {codes[first['id']].lower()}. ")  # case and punctuation aside
    assert await alert_status(db, first["id"]) == "acknowledged"
    assert await alert_status(db, second["id"]) != "acknowledged"
    await phones.reply(number, "ZZZZ")  # no such code: a polite word, no change
    answers = await phones.answers(number)
    assert "Reply 1" in answers[-1]
    await phones.reply(number, "ack all")
    assert await alert_status(db, second["id"]) == "acknowledged"
    assert await alert_status(db, third["id"]) == "acknowledged"


async def test_replies_from_an_unknown_number_or_with_a_bad_signature_change_nothing(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    phones: Phones,
    db: asyncpg.Pool,
) -> None:
    number = a_number()
    doc = await phone_clinician(notify, "Dr Guarded", [{"kind": "sms", "address": number}])
    await roster.policy(["high"], [{"clinician_ids": [doc], "delay_seconds": 60}])
    alert = await alert_of(db, await flagged(intake))
    await phones.wait_for_text(number)

    stranger = a_number()
    inbound = await phones.reply(stranger, "1")
    assert inbound["callbacks"][0]["status_code"] == 200
    assert await phones.answers(stranger) == [], "no answer to a stranger"
    assert await alert_status(db, alert["id"]) != "acknowledged"

    url = f"{notify.base_url}/v1/twilio/sms".replace("http://", "http://", 1)
    params = {"From": number, "To": PROVIDER_NUMBER, "Body": "1", "MessageSid": "SM" + "0" * 32}
    attempts = {
        "no header": {},
        "a wrong signature": {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
        "another token's": {"X-Twilio-Signature": signed(phones, url, params, token="x" * 32)},
        "over another URL": {
            "X-Twilio-Signature": signed(phones, "http://proxy.example/v1/twilio/sms", params)
        },
        "over other parameters": {
            "X-Twilio-Signature": signed(phones, url, {**params, "Body": "STOP"})
        },
    }
    async with httpx.AsyncClient(base_url=str(notify.base_url), timeout=10) as bare:
        for why, headers in attempts.items():
            refused = await bare.post("/v1/twilio/sms", data=params, headers=headers)
            assert refused.status_code == 403, why
            assert "signature" in refused.json()["detail"]
            assert phones.auth_token not in refused.text
        assert await alert_status(db, alert["id"]) != "acknowledged"
        for route in ("/v1/twilio/status", "/v1/twilio/voice", "/v1/twilio/voice/gather"):
            assert (await bare.post(route, data=params)).status_code == 403, route
        # Not operations a client calls with a credential: not in the OpenAPI.
        paths = (await bare.get("/openapi.json")).json()["paths"]
        assert not [p for p in paths if p.startswith("/v1/twilio")]
        refusals = await wait_until(lambda: _denied(intake), what="the refusals in the audit trail")
        assert refusals and all(e["actor"] == "provider" for e in refusals)
        # Signed as Twilio signs it, over NOTIFY_PUBLIC_URL: accepted.
        good = {"X-Twilio-Signature": signed(phones, url, params)}
        accepted = await bare.post("/v1/twilio/sms", data=params, headers=good)
        assert accepted.status_code == 200 and "<Message>" in accepted.text
    assert await alert_status(db, alert["id"]) == "acknowledged"


async def _denied(intake: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await intake.get("/v1/audit", params={"action": "sms_reply"})
    body = response.json()
    entries = body["entries"] if isinstance(body, dict) else body
    return [e for e in entries if e["outcome"] == "denied"]


async def test_stop_skips_the_phone_and_start_restores_it(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    pagers: Pagers,
    phones: Phones,
    db: asyncpg.Pool,
) -> None:
    number = a_number()
    pager = f"stop-{uuid.uuid4().hex[:6]}"
    doc = await phone_clinician(
        notify,
        "Dr Stop",
        [{"kind": "sms", "address": number}, {"kind": "webhook", "address": pagers.url(pager)}],
    )
    await roster.policy(["high"], [{"clinician_ids": [doc], "delay_seconds": 60}])
    first = await flagged(intake)
    await phones.wait_for_text(number)
    await pagers.wait_for(pager, first)
    await phones.reply(number, "STOP")
    methods = (await notify.get(f"/v1/clinicians/{doc}")).json()["contact_methods"]
    assert methods[0]["opted_out_at"] is not None and methods[1]["opted_out_at"] is None

    second = await flagged(intake)
    await pagers.wait_for(pager, second)
    await asyncio.sleep(1)
    assert len(await phones.texts(number)) == 1, "an opted-out phone is not texted"

    await phones.reply(number, "START")
    methods = (await notify.get(f"/v1/clinicians/{doc}")).json()["contact_methods"]
    assert methods[0]["opted_out_at"] is None
    third = await flagged(intake)
    await pagers.wait_for(pager, third)
    await phones.wait_for_text(number, count=2)


async def test_an_undelivered_text_pages_the_next_method_at_once(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    pagers: Pagers,
    phones: Phones,
    db: asyncpg.Pool,
) -> None:
    number = a_number()
    pager = f"next-{uuid.uuid4().hex[:6]}"
    doc = await phone_clinician(
        notify,
        "Dr Unreachable",
        [
            {"kind": "sms", "address": number},
            {"kind": "webhook", "address": pagers.url(pager), "delay_seconds": 120},
        ],
    )
    await roster.policy(["high"], [{"clinician_ids": [doc], "delay_seconds": 300}])
    await phones.unreachable(number)
    started = time.monotonic()
    sid = await flagged(intake)
    await pagers.wait_for(pager, sid, timeout=20)
    assert time.monotonic() - started < 20, "not after the webhook's 120 s delay"
    alert = await alert_of(db, sid)
    sms = await db.fetchrow(
        "SELECT status, provider_status FROM notify.deliveries"
        " WHERE alert_id = $1 AND channel = 'sms'",
        alert["id"],
    )
    assert dict(sms) == {"status": "failed", "provider_status": "undelivered"}


async def test_a_report_before_the_sends_answer_applies_and_a_repeat_applies_once(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    phones: Phones,
    db: asyncpg.Pool,
) -> None:
    number = a_number()
    await phones._call(
        "POST", f"/_local/phones/{number}/reports-first", json={"reports_first": True}
    )
    doc = await phone_clinician(notify, "Dr Race", [{"kind": "sms", "address": number}])
    await roster.policy(["high"], [{"clinician_ids": [doc], "delay_seconds": 60}])
    alert = await alert_of(db, await flagged(intake))
    await phones.wait_for_text(number)

    async def reported() -> dict[str, Any] | None:
        [text] = await phones.texts(number)
        return text if len(text["callbacks"]) == 2 else None

    text = await wait_until(reported, what="both reports")
    assert [c["params"]["MessageStatus"] for c in text["callbacks"]] == ["sent", "delivered"]
    assert all(c["status_code"] == 204 for c in text["callbacks"])
    page = await wait_until(
        lambda: db.fetchrow(
            "SELECT d.*, a.status AS alert_status, a.escalate_at, a.version"
            " FROM notify.deliveries d JOIN notify.alerts a ON a.id = d.alert_id"
            " WHERE d.alert_id = $1 AND d.status = 'delivered'",
            alert["id"],
        ),
        what="the page delivered by the report that came first",
    )
    assert page["alert_status"] == "delivered" and page["escalate_at"] is not None
    attempts = await db.fetch(
        "SELECT outcome FROM notify.delivery_attempts WHERE delivery_id = $1", page["id"]
    )
    assert [a["outcome"] for a in attempts] == ["accepted"], "the send's answer, recorded after"

    # The same report again (Twilio retries a callback it thinks failed): no change.
    delivered = next(c for c in text["callbacks"] if c["params"]["MessageStatus"] == "delivered")
    async with httpx.AsyncClient(timeout=10) as bare:
        again = await bare.post(
            delivered["url"],
            data=delivered["params"],
            headers={"X-Twilio-Signature": signed(phones, delivered["url"], delivered["params"])},
        )
    assert again.status_code == 204
    after = await db.fetchrow(
        "SELECT version, escalate_at FROM notify.alerts WHERE id = $1", alert["id"]
    )
    assert (after["version"], after["escalate_at"]) == (page["version"], page["escalate_at"])


async def test_a_call_acknowledges_only_on_a_pressed_1(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    phones: Phones,
    db: asyncpg.Pool,
) -> None:
    number = a_number()
    doc = await phone_clinician(notify, "Dr Call", [{"kind": "voice", "address": number}])
    await roster.policy(["high"], [{"clinician_ids": [doc], "delay_seconds": 60}])
    alert = await alert_of(db, await flagged(intake))
    [call] = await phones.wait_for_call(number)
    answered = await phones.call_action(call["sid"], "answer")
    heard = " ".join(answered["transcript"]) if "transcript" in answered else str(answered)
    assert "high risk" in heard and "Press 1" in heard
    assert not any(phi in heard for phi in PHI)
    await phones.call_action(call["sid"], "press", Digits="2")
    assert await alert_status(db, alert["id"]) == "pending", "only a 1 acknowledges"
    await phones.call_action(call["sid"], "press", Digits="1")
    assert await alert_status(db, alert["id"]) == "acknowledged"
    acked = (await notify.get(f"/v1/alerts/{alert['id']}")).json()
    assert acked["acknowledged_by"] == "Dr Call"


async def test_a_call_that_ends_without_a_1_escalates_and_is_never_delivered(
    intake: httpx.AsyncClient,
    notify: httpx.AsyncClient,
    roster: Roster,
    pagers: Pagers,
    phones: Phones,
    db: asyncpg.Pool,
) -> None:
    number = a_number()
    caller = await phone_clinician(notify, "Dr Voicemail", [{"kind": "voice", "address": number}])
    backup = await roster.clinician("backup")
    await roster.policy(
        ["high"],
        [
            {"clinician_ids": [caller], "delay_seconds": 300},
            {"clinician_ids": [backup.id], "delay_seconds": 300},
        ],
    )
    sid = await flagged(intake)
    alert = await alert_of(db, sid)
    [call] = await phones.wait_for_call(number)
    await phones.call_action(call["sid"], "answer")
    await phones.call_action(call["sid"], "silence")
    ended = await phones.call_action(call["sid"], "silence")
    assert ended["status"] == "completed"
    await pagers.wait_for(backup.pager, sid, timeout=10)
    voice = await db.fetchrow(
        "SELECT status, provider_status FROM notify.deliveries"
        " WHERE alert_id = $1 AND channel = 'voice'",
        alert["id"],
    )
    assert dict(voice) == {"status": "failed", "provider_status": "completed"}
    row = await db.fetchrow("SELECT escalation_level FROM notify.alerts WHERE id = $1", alert["id"])
    assert row["escalation_level"] == 1

    # A machine that answers is hung up on, and is no delivery either.
    number2 = a_number()
    other = await phone_clinician(notify, "Dr Machine", [{"kind": "voice", "address": number2}])
    await roster.cleanup()
    await roster.policy(
        ["high"],
        [
            {"clinician_ids": [other], "delay_seconds": 300},
            {"clinician_ids": [backup.id], "delay_seconds": 300},
        ],
    )
    sid2 = await flagged(intake)
    [call2] = await phones.wait_for_call(number2)
    await phones.call_action(call2["sid"], "machine")
    await pagers.wait_for(backup.pager, sid2, timeout=10)


@pytest.mark.parametrize("number", ["5550100", "+1", "+1 555", "not a number", "+999123456"])
async def test_a_phone_method_needs_a_phone_number(notify: httpx.AsyncClient, number: str) -> None:
    response = await notify.post(
        "/v1/clinicians",
        json={"name": "Dr Typo", "contact_methods": [{"kind": "sms", "address": number}]},
    )
    assert response.status_code == 422
    assert number not in response.text, "the input is not echoed"
    if len(number) >= 3:  # shorter is refused as too short, before its kind is looked at
        assert "phone number" in response.text


async def test_a_phone_number_is_kept_in_e164(notify: httpx.AsyncClient) -> None:
    response = await notify.post(
        "/v1/clinicians",
        json={
            "name": "Dr Format",
            "contact_methods": [{"kind": "voice", "address": "+1 (415) 555-0100"}],
        },
    )
    assert response.status_code == 201
    assert response.json()["contact_methods"][0]["address"] == "+14155550100"
