"""The local Twilio stand-in (deploy/phones) answers as Twilio documents it, and its webhooks
validate with the official `twilio` package's RequestValidator.

In process: the provider over httpx's ASGI transport, and its webhooks carried to a small
receiver app (standing in for notify) that records each request and whether its
X-Twilio-Signature validates, and answers the TwiML a test sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from deploy.localstack import free_port
from deploy.phones.app import create_app
from deploy.phones.runtime import Runtime
from deploy.phones.settings import PhonesSettings

ACCOUNT = "AC" + "0123456789abcdef" * 2
TOKEN = "f" * 32
NOTIFY = "http://notify.test"
PHONES = "http://phones.test"
PROVIDER_NUMBER = "+15555550100"
BASE = f"/2010-04-01/Accounts/{ACCOUNT}"


@dataclass
class Received:
    path: str
    url: str
    params: dict[str, str]
    signature: str
    valid: bool


class Receiver:
    """Notify's side of the webhooks: records them, answers `answers[path]` as TwiML.

    Not `tests.support.pagers.Pagers` (the tests' one webhook receiver): Twilio's callbacks are
    form-encoded GETs and POSTs checked against Twilio's signature, answered with TwiML, and
    served in this process's ASGI app rather than on a port of their own.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answers: dict[str, str] = {}
        self.app = FastAPI()
        validator = RequestValidator(TOKEN)

        @self.app.api_route("/{path:path}", methods=["GET", "POST"])
        async def anything(request: Request, path: str) -> Response:
            params = {k: str(v) for k, v in (await request.form()).items()}
            signature = request.headers.get("X-Twilio-Signature", "")
            url = str(request.url)
            valid = bool(validator.validate(url, params, signature))
            self.requests.append(Received("/" + path, url, params, signature, valid))
            return Response(self.answers.get("/" + path, ""), media_type="application/xml")

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll until `check()` is truthy (the provider's callbacks are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := check()):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
    return result


@dataclass
class Setup:
    api: httpx.AsyncClient  # authenticated as the account
    client: httpx.AsyncClient  # no credentials: pages and the test API
    receiver: Receiver
    runtime: Runtime


@pytest.fixture
async def phones() -> AsyncIterator[Setup]:
    receiver = Receiver()
    settings = PhonesSettings(
        account_sid=ACCOUNT, auth_token=TOKEN, sms_url=f"{NOTIFY}/v1/twilio/sms"
    )  # type: ignore[call-arg]
    app = create_app(settings, transport=httpx.ASGITransport(app=receiver.app))
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=PHONES, auth=(ACCOUNT, TOKEN)) as api,
        httpx.AsyncClient(transport=transport, base_url=PHONES) as client,
    ):
        yield Setup(api, client, receiver, app.state.runtime)
        await app.state.runtime.close()


async def send_text(setup: Setup, to: str = "+15551230001", **extra: str) -> httpx.Response:
    form = {
        "To": to,
        "From": PROVIDER_NUMBER,
        "Body": "Alert A7: high risk screening, reply 1 to acknowledge",
        "StatusCallback": f"{NOTIFY}/v1/twilio/status",
        **extra,
    }
    return await setup.api.post(f"{BASE}/Messages.json", data=form)


async def test_the_rest_api_wants_the_accounts_basic_credentials(phones: Setup) -> None:
    form = {"To": "+15551230001", "From": PROVIDER_NUMBER, "Body": "hi"}
    url = f"{BASE}/Messages.json"
    for refused in (
        await phones.client.post(url, data=form),
        await phones.client.post(url, data=form, auth=(ACCOUNT, "wrong-token")),
        await phones.client.post(url, data=form, auth=("AC" + "1" * 32, TOKEN)),
    ):
        assert refused.status_code == 401
        assert refused.json() == {
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        }
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
    garbled = await phones.client.post(
        f"{BASE}/Messages.json", data=form, headers={"Authorization": "Basic %%%"}
    )
    assert garbled.status_code == 401
    other = await phones.api.post(f"/2010-04-01/Accounts/AC{'2' * 32}/Messages.json", data=form)
    assert other.status_code == 404 and other.json()["code"] == 20404
    accepted = await phones.api.post(f"{BASE}/Messages.json", data=form)
    assert accepted.status_code == 201


async def test_a_text_is_queued_as_twilio_answers_and_its_receipts_are_signed(
    phones: Setup,
) -> None:
    created = await send_text(phones)
    assert created.status_code == 201
    message = created.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"])
    assert message["status"] == "queued"
    assert message["to"] == "+15551230001"
    assert message["from"] == PROVIDER_NUMBER
    assert message["body"].startswith("Alert A7")
    assert message["account_sid"] == ACCOUNT
    assert message["direction"] == "outbound-api"
    assert message["api_version"] == "2010-04-01"
    assert message["uri"] == f"{BASE}/Messages/{message['sid']}.json"
    assert message["num_segments"] == "1" and message["error_code"] is None
    assert parsedate_to_datetime(message["date_created"]).tzinfo is not None

    receipts = await eventually(lambda: len(phones.receiver.to("/v1/twilio/status")) == 2)
    receipts = phones.receiver.to("/v1/twilio/status")
    assert [r.params["MessageStatus"] for r in receipts] == ["sent", "delivered"]
    for receipt in receipts:
        assert receipt.valid, "X-Twilio-Signature does not validate"
        assert receipt.params["MessageSid"] == message["sid"]
        assert receipt.params["AccountSid"] == ACCOUNT
        assert receipt.params["From"] == PROVIDER_NUMBER
        assert receipt.params["To"] == "+15551230001"
        assert "ErrorCode" not in receipt.params
    fetched = await phones.api.get(f"{BASE}/Messages/{message['sid']}.json")
    assert fetched.json()["status"] == "delivered"
    assert fetched.json()["date_sent"] is not None


async def test_the_signature_is_twilios_and_fails_when_a_parameter_changes(
    phones: Setup,
) -> None:
    await send_text(phones)
    receipt = (await eventually(lambda: phones.receiver.to("/v1/twilio/status")))[0]
    validator = RequestValidator(TOKEN)
    assert validator.validate(receipt.url, receipt.params, receipt.signature)
    tampered = {**receipt.params, "MessageStatus": "failed"}
    assert not validator.validate(receipt.url, tampered, receipt.signature)
    assert not validator.validate(receipt.url + "?x=1", receipt.params, receipt.signature)
    assert not RequestValidator("another-token").validate(
        receipt.url, receipt.params, receipt.signature
    )


async def test_a_bad_to_or_no_body_is_twilios_400(phones: Setup) -> None:
    bad_to = await send_text(phones, to="555-0001")
    assert bad_to.status_code == 400
    assert bad_to.json()["code"] == 21211 and bad_to.json()["status"] == 400
    assert "555-0001" not in bad_to.text  # a phone number is PHI, never in an error
    no_body = await send_text(phones, Body="")
    assert no_body.status_code == 400 and no_body.json()["code"] == 21602
    no_to = await send_text(phones, to="")
    assert no_to.status_code == 400 and no_to.json()["code"] == 21604


async def test_a_text_to_an_unreachable_phone_ends_undelivered_30003(phones: Setup) -> None:
    number = "+15551230002"
    switched = await phones.client.post(
        f"/_local/phones/{number}/unreachable", json={"unreachable": True}
    )
    assert switched.status_code == 200
    await send_text(phones, to=number)
    receipts = await eventually(lambda: len(phones.receiver.to("/v1/twilio/status")) == 2)
    receipts = phones.receiver.to("/v1/twilio/status")
    assert [r.params["MessageStatus"] for r in receipts] == ["sent", "undelivered"]
    assert receipts[1].params["ErrorCode"] == "30003" and receipts[1].valid
    state = (await phones.client.get(f"/_local/phones/{number}")).json()
    assert state["messages"][0]["error_code"] == 30003


async def test_a_reply_is_posted_signed_to_the_inbound_url_and_its_message_shown(
    phones: Setup,
) -> None:
    number = "+15551230003"
    await send_text(phones, to=number)
    phones.receiver.answers["/v1/twilio/sms"] = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Message>Alert A7 acknowledged, thank you</Message></Response>"
    )
    replied = await phones.client.post(f"/_local/phones/{number}/reply", json={"Body": "1"})
    assert replied.status_code == 200
    inbound = phones.receiver.to("/v1/twilio/sms")
    assert len(inbound) == 1 and inbound[0].valid
    params = inbound[0].params
    assert params["From"] == number and params["To"] == PROVIDER_NUMBER
    assert params["Body"] == "1" and params["NumMedia"] == "0"
    assert params["AccountSid"] == ACCOUNT
    assert re.fullmatch(r"SM[0-9a-f]{32}", params["MessageSid"])
    assert replied.json()["callbacks"][0]["status_code"] == 200

    state = (await phones.client.get(f"/_local/phones/{number}")).json()
    newest = state["messages"][0]
    assert newest["direction"] == "outbound-reply"
    assert newest["body"] == "Alert A7 acknowledged, thank you"
    assert newest["to"] == number and newest["from"] == PROVIDER_NUMBER
    page = await phones.client.get(f"/phones/{number}")
    assert page.status_code == 200
    assert "Alert A7 acknowledged, thank you" in page.text
    await phones.client.post(f"/_local/phones/{number}/reply", json={"Body": "<b>ack</b>"})
    page = await phones.client.get(f"/phones/{number}")
    assert "&lt;b&gt;ack&lt;/b&gt;" in page.text and "<b>ack" not in page.text
    not_a_phone = await phones.client.post("/_local/phones/nobody/reply", json={"Body": "1"})
    assert not_a_phone.status_code == 404
    assert '<label for="body">' in page.text and "<h1>" in page.text


async def test_stop_blocks_the_next_text_with_21610_until_start(phones: Setup) -> None:
    number = "+15551230004"
    assert (await send_text(phones, to=number)).status_code == 201
    await phones.client.post(f"/_local/phones/{number}/reply", json={"Body": "STOP"})
    assert phones.receiver.to("/v1/twilio/sms")[0].params["Body"] == "STOP"
    refused = await send_text(phones, to=number)
    assert refused.status_code == 400
    assert refused.json()["code"] == 21610
    await phones.client.post(f"/_local/phones/{number}/reply", json={"Body": "START"})
    assert (await send_text(phones, to=number)).status_code == 201


GATHER = (
    "<Response>"
    '<Gather numDigits="1" action="/v1/twilio/voice/ack" method="POST">'
    "<Say>Alert A7. Press 1 to acknowledge.</Say></Gather>"
    "<Say>We did not hear from you.</Say>"
    "</Response>"
)


async def start_call(setup: Setup, to: str, **extra: str) -> dict[str, Any]:
    form = {
        "To": to,
        "From": PROVIDER_NUMBER,
        "Url": f"{NOTIFY}/v1/twilio/voice",
        "StatusCallback": f"{NOTIFY}/v1/twilio/call-status",
        **extra,
    }
    created = await setup.api.post(f"{BASE}/Calls.json", data=form)
    assert created.status_code == 201, created.text
    call: dict[str, Any] = created.json()
    assert re.fullmatch(r"CA[0-9a-f]{32}", call["sid"]) and call["status"] == "queued"
    assert call["direction"] == "outbound-api" and call["to"] == to
    assert call["uri"] == f"{BASE}/Calls/{call['sid']}.json"

    async def status() -> str:
        return str((await setup.client.get(f"/_local/calls/{call['sid']}")).json()["status"])

    deadline = asyncio.get_running_loop().time() + 10
    while await status() != "ringing":
        assert asyncio.get_running_loop().time() < deadline, "the call never rang"
        await asyncio.sleep(0.01)
    return call


async def test_a_call_answered_gathers_1_and_completes(phones: Setup) -> None:
    phones.receiver.answers["/v1/twilio/voice"] = GATHER
    phones.receiver.answers["/v1/twilio/voice/ack"] = (
        "<Response><Say>Acknowledged.</Say><Hangup/></Response>"
    )
    call = await start_call(phones, "+15551230005", MachineDetection="Enable")
    sid = call["sid"]

    answered = await phones.client.post(f"/_local/calls/{sid}/answer")
    assert answered.status_code == 200
    assert answered.json()["status"] == "in-progress"
    assert answered.json()["waiting_for_digits"] is True
    assert "says: Alert A7. Press 1 to acknowledge." in answered.json()["transcript"]
    (fetch,) = phones.receiver.to("/v1/twilio/voice")
    assert fetch.valid
    assert fetch.params["CallSid"] == sid and fetch.params["AccountSid"] == ACCOUNT
    assert fetch.params["CallStatus"] == "in-progress"
    assert fetch.params["Direction"] == "outbound-api"
    assert fetch.params["From"] == PROVIDER_NUMBER and fetch.params["To"] == "+15551230005"
    assert fetch.params["AnsweredBy"] == "human"

    pressed = await phones.client.post(f"/_local/calls/{sid}/press", json={"Digits": "1"})
    assert pressed.status_code == 200
    (action,) = phones.receiver.to("/v1/twilio/voice/ack")
    assert action.valid and action.params["Digits"] == "1"
    assert action.url == f"{NOTIFY}/v1/twilio/voice/ack"  # relative to the document
    assert pressed.json()["status"] == "completed"
    assert "says: Acknowledged." in pressed.json()["transcript"]

    (completed,) = phones.receiver.to("/v1/twilio/call-status")  # only `completed` by default
    assert completed.valid
    assert completed.params["CallStatus"] == "completed"
    assert completed.params["CallSid"] == sid
    assert completed.params["CallDuration"].isdigit()
    assert completed.params["CallbackSource"] == "call-progress-events"
    fetched = await phones.api.get(f"{BASE}/Calls/{sid}.json")
    assert fetched.json()["status"] == "completed" and fetched.json()["answered_by"] == "human"


async def test_a_call_not_answered_reports_no_answer(phones: Setup) -> None:
    call = await start_call(
        phones, "+15551230006", StatusCallbackEvent="initiated ringing answered completed"
    )
    ended = await phones.client.post(f"/_local/calls/{call['sid']}/no-answer")
    assert ended.json()["status"] == "no-answer"
    events = phones.receiver.to("/v1/twilio/call-status")
    assert [e.params["CallStatus"] for e in events] == ["initiated", "ringing", "no-answer"]
    assert all(e.valid for e in events)
    assert phones.receiver.to("/v1/twilio/voice") == []  # nobody answered: no TwiML fetched
    too_late = await phones.client.post(f"/_local/calls/{call['sid']}/answer")
    assert too_late.status_code == 409


async def test_voicemail_is_answered_by_machine_start(phones: Setup) -> None:
    phones.receiver.answers["/v1/twilio/voice"] = GATHER
    call = await start_call(phones, "+15551230007", MachineDetection="Enable")
    await phones.client.post(f"/_local/calls/{call['sid']}/machine")
    (fetch,) = phones.receiver.to("/v1/twilio/voice")
    assert fetch.params["AnsweredBy"] == "machine_start"
    silent = await phones.client.post(f"/_local/calls/{call['sid']}/silence")
    assert silent.json()["status"] == "completed"  # after the Gather: <Say>, then the end
    assert "says: We did not hear from you." in silent.json()["transcript"]
    (completed,) = phones.receiver.to("/v1/twilio/call-status")
    assert completed.params["AnsweredBy"] == "machine_start"


async def test_the_pages_list_the_phones_and_offer_the_call_buttons(phones: Setup) -> None:
    phones.receiver.answers["/v1/twilio/voice"] = GATHER
    call = await start_call(phones, "+15551230008")
    index = await phones.client.get("/")
    assert index.status_code == 200 and "+15551230008" in index.text
    page = await phones.client.get("/phones/+15551230008")
    for button in ("Answer", "Voicemail", "Hang up", "No answer", "Busy"):
        assert f">{button}</button>" in page.text
    answered = await phones.client.post(f"/phones/+15551230008/calls/{call['sid']}/answer")
    assert answered.status_code == 303
    page = await phones.client.get("/phones/+15551230008")
    assert ">Press 1</button>" in page.text and '<label for="d-' in page.text
    hung = await phones.client.post(f"/phones/+15551230008/calls/{call['sid']}/hangup")
    assert hung.status_code == 303
    assert (await phones.client.get(f"/_local/calls/{call['sid']}")).json()["status"] == (
        "completed"
    )


async def test_a_gather_without_num_digits_ends_on_finish_key_or_timeout(phones: Setup) -> None:
    phones.receiver.answers["/v1/twilio/voice"] = (
        '<Response><Gather action="/v1/twilio/code"><Say>Enter the code.</Say></Gather></Response>'
    )
    phones.receiver.answers["/v1/twilio/code"] = (
        '<Response><Gather action="/v1/twilio/code2"><Say>Again.</Say></Gather></Response>'
    )
    call = await start_call(phones, "+15551230016")
    sid = call["sid"]
    await phones.client.post(f"/_local/calls/{sid}/answer")
    await phones.client.post(f"/_local/calls/{sid}/press", json={"Digits": "12"})
    assert phones.receiver.to("/v1/twilio/code") == []  # still listening
    await phones.client.post(f"/_local/calls/{sid}/press", json={"Digits": "3#"})
    (code,) = phones.receiver.to("/v1/twilio/code")
    assert code.params["Digits"] == "123" and code.params["FinishedOnKey"] == "#"
    await phones.client.post(f"/_local/calls/{sid}/press", json={"Digits": "45"})
    timed_out = await phones.client.post(f"/_local/calls/{sid}/silence")
    (code2,) = phones.receiver.to("/v1/twilio/code2")
    assert code2.params["Digits"] == "45" and "FinishedOnKey" not in code2.params
    assert timed_out.json()["status"] == "completed"  # the answer was empty: the call ends
    bad = await phones.client.post(f"/_local/calls/{sid}/press", json={"Digits": "x"})
    assert bad.status_code == 422


async def test_a_call_unanswered_for_its_timeout_ends_no_answer(phones: Setup) -> None:
    call = await start_call(phones, "+15551230010", Timeout="1")
    completed = await eventually(lambda: phones.receiver.to("/v1/twilio/call-status"))
    assert completed[0].params["CallStatus"] == "no-answer" and completed[0].valid
    assert completed[0].params["CallSid"] == call["sid"]


async def test_a_call_to_an_unreachable_phone_fails(phones: Setup) -> None:
    number = "+15551230011"
    await phones.client.post(f"/_local/phones/{number}/unreachable", json={"unreachable": True})
    form = {"To": number, "From": PROVIDER_NUMBER, "Url": f"{NOTIFY}/v1/twilio/voice"}
    form["StatusCallback"] = f"{NOTIFY}/v1/twilio/call-status"
    assert (await phones.api.post(f"{BASE}/Calls.json", data=form)).status_code == 201
    await phones.runtime.idle()
    (completed,) = phones.receiver.to("/v1/twilio/call-status")
    assert completed.params["CallStatus"] == "failed" and completed.valid


async def test_a_get_url_and_a_relative_redirect_are_followed_signed(phones: Setup) -> None:
    phones.receiver.answers["/v1/twilio/voice"] = (
        '<Response><Say>One moment.</Say><Redirect method="POST">next</Redirect></Response>'
    )
    phones.receiver.answers["/v1/twilio/next"] = "<Response><Hangup/></Response>"
    call = await start_call(phones, "+15551230012", Method="GET")
    done = await phones.client.post(f"/_local/calls/{call['sid']}/answer")
    assert done.json()["status"] == "completed"
    (first,) = phones.receiver.to("/v1/twilio/voice")
    assert "CallSid=" in first.url and first.params == {} and first.valid  # GET: in the query
    (second,) = phones.receiver.to("/v1/twilio/next")
    assert second.valid and second.params["CallSid"] == call["sid"]


async def test_only_the_accounts_number_may_send(phones: Setup) -> None:
    text = await send_text(phones, From="+15550009999")
    assert text.status_code == 400 and text.json()["code"] == 21606
    form = {"To": "+15551230013", "From": "+15550009999", "Url": f"{NOTIFY}/v1/twilio/voice"}
    call = await phones.api.post(f"{BASE}/Calls.json", data=form)
    assert call.status_code == 400 and call.json()["code"] == 21210
    no_url = await phones.api.post(
        f"{BASE}/Calls.json", data={**form, "From": PROVIDER_NUMBER, "Url": ""}
    )
    assert no_url.status_code == 400 and no_url.json()["code"] == 21205


async def test_a_cross_site_form_cannot_act_for_a_phone(phones: Setup) -> None:
    """Another site open in the developer's browser must not acknowledge an alert."""
    number = "+15551230014"
    await send_text(phones, to=number)
    evil = {"Origin": "https://evil.example"}
    refused = await phones.client.post(f"/phones/{number}/reply", data={"body": "1"}, headers=evil)
    assert refused.status_code == 403
    refused = await phones.client.post(
        f"/_local/phones/{number}/reply", json={"Body": "1"}, headers=evil
    )
    assert refused.status_code == 403
    assert phones.receiver.to("/v1/twilio/sms") == []
    own = await phones.client.post(
        f"/phones/{number}/reply", data={"body": "1"}, headers={"Origin": PHONES}
    )
    assert own.status_code == 303
    assert phones.receiver.to("/v1/twilio/sms")[0].params["Body"] == "1"


class _Redirected(TwilioHttpClient):
    """twilio-python's own HTTP client, sent to the local provider instead of api.twilio.com."""

    def __init__(self, base: str) -> None:
        super().__init__(timeout=10)
        self._base = base

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        local = url.replace("https://api.twilio.com", self._base)
        return super().request(method, local, *args, **kwargs)


@pytest.fixture
def served() -> Iterator[str]:
    """`python -m deploy.phones` on a free port."""
    port = free_port()
    env = {
        **os.environ,
        "PHONES_PORT": str(port),
        "PHONES_ACCOUNT_SID": ACCOUNT,
        "PHONES_AUTH_TOKEN": TOKEN,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.phones"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            assert proc.poll() is None, "deploy.phones ended while starting"
            assert time.monotonic() < deadline, "deploy.phones did not start in time"
            time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()


def test_twilios_own_client_sends_texts_and_calls_through_the_server(served: str) -> None:
    """The official client (its auth, its form encoding, its JSON parsing) works against
    `python -m deploy.phones` unchanged, except for the base URL."""
    client = Client(ACCOUNT, TOKEN, http_client=_Redirected(served))
    message = client.messages.create(to="+15551230009", from_=PROVIDER_NUMBER, body="Alert A7")
    assert message.sid.startswith("SM") and message.status == "queued"
    assert message.date_created is not None and message.to == "+15551230009"
    deadline = time.monotonic() + 10
    while client.messages(message.sid).fetch().status != "delivered":
        assert time.monotonic() < deadline, "the text was never delivered"
        time.sleep(0.05)
    call = client.calls.create(
        to="+15551230009", from_=PROVIDER_NUMBER, url="http://127.0.0.1:9/voice"
    )
    assert call.sid.startswith("CA") and call.status == "queued"
    canceled = client.calls(call.sid).update(status="canceled")
    assert canceled.status == "canceled"
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="not a number", from_=PROVIDER_NUMBER, body="x")
    assert refused.value.code == 21211 and refused.value.status == 400
    wrong = Client(ACCOUNT, "wrong-token", http_client=_Redirected(served))
    with pytest.raises(TwilioRestException) as unauthorised:
        wrong.messages.create(to="+15551230009", from_=PROVIDER_NUMBER, body="x")
    assert unauthorised.value.status == 401 and unauthorised.value.code == 20003


CHROMIUM = "/usr/bin/chromium"


async def _accessible(page: Any) -> None:
    """axe-core: no serious or critical violation (labels, names, contrast, landmarks)."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [
        (v["id"], [n["target"] for n in v["nodes"]][:3])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}: {bad}"


async def _tab_to(page: Any, selector: str, limit: int = 40) -> None:
    """Tab until `selector` has the focus: the page works by keyboard alone."""
    for _ in range(limit):
        if await page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{selector} cannot be reached with Tab")


@pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"no Chromium at {CHROMIUM}")
async def test_the_phone_pages_are_accessible_and_work_by_keyboard(served: str) -> None:
    from playwright.async_api import async_playwright, expect

    number = "+15551230015"
    async with httpx.AsyncClient(base_url=served, auth=(ACCOUNT, TOKEN)) as api:
        form = {"To": number, "From": PROVIDER_NUMBER, "Body": "Alert A7: reply 1"}
        assert (await api.post(f"{BASE}/Messages.json", data=form)).status_code == 201
        form = {"To": number, "From": PROVIDER_NUMBER, "Url": "http://127.0.0.1:9/voice"}
        call = (await api.post(f"{BASE}/Calls.json", data=form)).json()
        deadline = time.monotonic() + 10
        while (await api.get(f"{BASE}/Calls/{call['sid']}.json")).json()["status"] != "ringing":
            assert time.monotonic() < deadline, "the call never rang"
            await asyncio.sleep(0.02)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page()
            await page.goto(served + "/")
            await _accessible(page)
            await _tab_to(page, 'a[href^="/phones/"]')
            await page.keyboard.press("Enter")
            await page.wait_for_url(re.compile(r"/phones/"))
            await expect(page.get_by_role("heading", level=1)).to_have_text(f"Phone {number}")
            await _accessible(page)
            await _tab_to(page, 'form[action$="/answer"] button')
            await page.keyboard.press("Enter")
            # Its Url answers nothing (a closed port): Twilio's application error, then the end.
            await expect(page.get_by_text("application error (11200)", exact=False)).to_be_visible()
            await page.get_by_label("Reply by text").fill("1")
            await page.keyboard.press("Enter")
            await expect(
                page.get_by_role("heading", name=re.compile("Sent by this phone"))
            ).to_be_visible()
            await _accessible(page)
        finally:
            await browser.close()


async def test_each_number_has_its_own_webhook_and_a_reply_goes_to_the_last_sender() -> None:
    receiver = Receiver()
    caring = "+15555550101"
    settings = PhonesSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        sms_url=f"{NOTIFY}/v1/twilio/sms",
        numbers=f"{caring}=http://intake.test/v1/twilio/sms,+15555550102",
    )  # type: ignore[call-arg]
    assert settings.sms_urls == {
        PROVIDER_NUMBER: f"{NOTIFY}/v1/twilio/sms",
        caring: "http://intake.test/v1/twilio/sms",
        "+15555550102": None,
    }
    app = create_app(settings, transport=httpx.ASGITransport(app=receiver.app))
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url=PHONES, auth=(ACCOUNT, TOKEN)) as api,
        httpx.AsyncClient(transport=transport, base_url=PHONES) as client,
    ):
        setup = Setup(api, client, receiver, app.state.runtime)
        person = "+15551230077"
        # The caring number sends (it is the account's), and the reply goes to it, then to
        # its own webhook, signed over that URL.
        assert (await send_text(setup, to=person, From=caring)).status_code == 201
        await client.post(f"/_local/phones/{person}/reply", json={"Body": "thanks"})
        (inbound,) = [r for r in receiver.requests if r.url.startswith("http://intake.test")]
        assert inbound.valid and inbound.params["To"] == caring
        assert inbound.params["Body"] == "thanks"
        assert receiver.to("/v1/twilio/sms") == [inbound]
        # The first number texts the phone now: its next reply goes to notify's webhook.
        assert (await send_text(setup, to=person)).status_code == 201
        await client.post(f"/_local/phones/{person}/reply", json={"Body": "1"})
        assert receiver.requests[-1].url == f"{NOTIFY}/v1/twilio/sms"
        assert receiver.requests[-1].params["To"] == PROVIDER_NUMBER
        # Unless the reply names its `To`.
        await client.post(f"/_local/phones/{person}/reply", json={"Body": "hi", "To": caring})
        assert receiver.requests[-1].url == "http://intake.test/v1/twilio/sms"
        # A number without a webhook forwards nothing; one not the account's may not send.
        before = len(receiver.requests)
        await client.post(
            f"/_local/phones/{person}/reply", json={"Body": "x", "To": "+15555550102"}
        )
        assert len(receiver.requests) == before
        assert (await send_text(setup, to=person, From="+15555550199")).json()["code"] == 21606
        page = await client.get("/")
        assert "http://intake.test/v1/twilio/sms" in page.text
        await app.state.runtime.close()
    with pytest.raises(ValueError):
        PhonesSettings(account_sid=ACCOUNT, auth_token=TOKEN, numbers="5550101=x")  # type: ignore[call-arg]
