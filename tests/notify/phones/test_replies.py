"""What a reply says and what a text holds, as plain functions."""

from __future__ import annotations

import pytest

from services.notify.phones.codes import draw
from services.notify.phones.replies import (
    ACK_WORDS,
    CODE_ALPHABET,
    START_WORDS,
    STOP_WORDS,
    Command,
    read,
)
from services.notify.phones.texts import SMS_LIMIT, call_prompt, sms_text


@pytest.mark.parametrize(
    ("body", "command"),
    [
        ("1", Command("ack")),
        (" ack ", Command("ack")),
        ("Ok.", Command("ack")),
        ("a", Command("ack")),
        ("7k3q", Command("unknown")),  # Q is not in the alphabet: no code has it
        ("7KXC", Command("ack_code", code="7KXC")),
        ("ack 7kxc!", Command("ack_code", code="7KXC")),
        ("ACK ALL", Command("ack_all")),
        ("aa", Command("ack_all")),
        ("Stop", Command("stop")),
        ("unsubscribe.", Command("stop")),
        ("START", Command("start")),
        ("I'm driving, will call back", Command("unknown")),
        ("", Command("unknown")),
    ],
)
def test_a_reply_is_read_as_one_command(body: str, command: Command) -> None:
    assert read(body) == command


def test_no_code_is_a_keyword_and_codes_are_unambiguous() -> None:
    keywords = STOP_WORDS | START_WORDS | ACK_WORDS
    four = {w for w in keywords if len(w) == 4}
    assert all(not set(w) <= set(CODE_ALPHABET) for w in four), "STOP, QUIT… cannot be codes"
    assert not set(CODE_ALPHABET) & set("0OQ1IL5S8BZUVG"), "no characters that read alike"
    assert all(read(draw()).kind == "ack_code" for _ in range(200))


def test_the_text_fits_one_segment_and_names_the_code() -> None:
    text = sms_text(
        risk_level="imminent",
        code="7KXC",
        case_url="https://console.example.org/alerts/" + "x" * 36,
    )
    assert len(text) <= SMS_LIMIT and "Reply 7KXC or 1" in text and "IMMINENT" in text
    too_long = sms_text(risk_level="imminent", code="7KXC", case_url="https://" + "x" * 200)
    assert len(too_long) <= SMS_LIMIT and "https" not in too_long, "the link goes, the rest stays"
    assert all(ord(c) < 128 for c in text), "GSM-7 safe"


def test_a_call_asks_twice_for_a_single_key() -> None:
    document = call_prompt(
        risk_level="high", gather_url="https://notify.example.org/v1/twilio/voice/gather?d=x&n=1"
    )
    assert (
        document.count(
            '<Gather action="https://notify.example.org/v1/twilio/voice/gather?d=x&amp;n=1"'
        )
        == 2
    )
    assert document.count('numDigits="1"') == 2 and "Press 1" in document


def test_the_case_timeline_names_each_pages_channel_provider_status_and_reply() -> None:
    from services.console.clinician import page_said

    said = page_said(
        {
            "channel": "sms",
            "escalation_level": 0,
            "status": "delivered",
            "provider_status": "delivered",
            "reply": "1",
        }
    )
    assert said == "Page by sms (level 0): delivered; provider: delivered; reply: 1"
    assert (
        page_said(
            {
                "channel": "webhook",
                "escalation_level": 1,
                "status": "failed",
                "provider_status": None,
            }
        )
        == "Page by webhook (level 1): failed"
    )
