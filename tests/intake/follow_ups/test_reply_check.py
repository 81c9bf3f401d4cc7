"""The reply check: STOP words whatever the case and punctuation around them, risk phrases in
English and Spanish whatever the accents and case, everything else routine."""

from __future__ import annotations

import pytest

from services.intake.follow_ups.reply_check import RISK_WORDS, STOP_WORDS, classify, normalise


@pytest.mark.parametrize(
    "body",
    [
        "stop",
        "STOP",
        " Stop! ",
        "stop.",
        "StopAll",
        "unsubscribe",
        "Cancel",
        "END",
        "quit",
        "ALTO",
        "¡Alto!",
        "parar",
        "  PARAR...  ",
    ],
)
def test_stop_words(body: str) -> None:
    assert classify(body).classification == "stop"


@pytest.mark.parametrize(
    ("body", "language"),
    [
        ("I want to die", "en"),
        ("i just WANT TO DIE tonight", "en"),
        ("thinking about suicide again", "en"),
        ("I'm going to kill myself", "en"),
        ("I want to end it", "en"),
        ("Quiero morir", "es"),
        ("quiero MORÍR", "es"),
        ("Voy a matarme", "es"),
        ("pienso en el suicidio", "es"),
        ("quiero hacerme daño", "es"),
    ],
)
def test_risk_words(body: str, language: str) -> None:
    verdict = classify(body)
    assert verdict.classification == "risk"
    assert f"risk_words:{language}" in verdict.reasons


@pytest.mark.parametrize(
    "body", ["Thanks, that was kind", "gracias", "stop sending so early please", "ok", "🙂", ""]
)
def test_routine(body: str) -> None:
    assert classify(body).classification == "routine"


def test_the_lists_are_normalised_as_the_replies_are() -> None:
    for phrases in RISK_WORDS.values():
        assert all(normalise(p) == p for p in phrases)
    assert all(normalise(w) == w for w in STOP_WORDS)
