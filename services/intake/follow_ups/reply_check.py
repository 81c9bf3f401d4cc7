"""What a reply to a caring message says, as far as a machine should judge: an opt-out word, risk
words, or neither. Clinical wording is data (versioned lists per language), the check is small.

Text is compared normalised: accents removed (NFKD, combining marks dropped), case folded,
everything but letters and digits a space. An opt-out is a reply that is only an opt-out word
("Stop!", " stop. ", "ALTO"); a risk phrase counts anywhere in the reply, in any language the
lists have (a person may answer in another language than they enrolled in). A reply that the
check cannot read is never routine: the caller treats an exception as `unclassified`, which pages
the on-call clinician like risk words do.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

VERSION = "2026-12.1"

#: Twilio's opt-out keywords, and the Spanish ones people use.
STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "alto", "parar"})

#: Phrases that page the on-call clinician (normalised as the replies are).
RISK_WORDS: dict[str, tuple[str, ...]] = {
    "en": (
        "kill myself",
        "killing myself",
        "suicide",
        "suicidal",
        "end it",
        "end it all",
        "end my life",
        "want to die",
        "wanna die",
        "going to die",
        "better off dead",
        "hurt myself",
        "no reason to live",
        "overdose",
        "take my life",
        "cant go on",
        "can t go on",
    ),
    "es": (
        "matarme",
        "me voy a matar",
        "suicidio",
        "suicidarme",
        "suicida",
        "quiero morir",
        "quiero morirme",
        "me quiero morir",
        "acabar con todo",
        "acabar con mi vida",
        "quitarme la vida",
        "no quiero vivir",
        "hacerme dano",
        "mejor muerto",
        "mejor muerta",
        "sobredosis",
    ),
}

_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NOT_WORD.sub(" ", plain).strip()


@dataclass(frozen=True)
class Verdict:
    classification: str  # routine, stop or risk
    reasons: tuple[str, ...] = ()


def classify(body: str) -> Verdict:
    text = normalise(body)
    if text in STOP_WORDS:
        return Verdict("stop", ("stop_word",))
    padded = f" {text} "
    languages = tuple(
        language
        for language, phrases in RISK_WORDS.items()
        if any(f" {phrase} " in padded for phrase in phrases)
    )
    if languages:
        return Verdict("risk", tuple(f"risk_words:{language}" for language in languages))
    return Verdict("routine")
