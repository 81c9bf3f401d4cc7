"""The caring messages themselves: short, warm, non-demanding, asking nothing of the person, one
set per language, versioned (the version an enrolment was sent from is kept with it).

They say who is writing only as "the crisis line team": no name, diagnosis or reason, since a
phone's lock screen is not private. No crisis number is written here: the person may be in any
country (their lines are on their printed plan). Each ends with how to stop, as carriers
require. Message n of an enrolment is text (n - 1) modulo the set's length.
"""

from __future__ import annotations

VERSION = "2026-12.1"

TEXTS: dict[str, tuple[str, ...]] = {
    "en": (
        "Hi, it's the crisis line team. We were glad you reached out, and we're thinking of you."
        " No need to reply. Reply STOP to end these messages.",
        "Just checking in from the crisis line team. We hope today is a little easier."
        " Reply STOP to end these messages.",
        "Thinking of you this week. If you ever want to talk, the crisis line is there any time."
        " Reply STOP to end these messages.",
        "Hello from the crisis line team. You matter to us. No reply needed."
        " Reply STOP to end these messages.",
    ),
    "es": (
        "Hola, somos el equipo de la línea de crisis. Nos alegró que nos buscaras y pensamos en"
        " ti. No hace falta responder. Responde ALTO para dejar de recibir mensajes.",
        "Solo queríamos saludarte desde la línea de crisis. Esperamos que hoy sea un poco más"
        " fácil. Responde ALTO para dejar de recibir mensajes.",
        "Pensamos en ti esta semana. Si quieres hablar, la línea de crisis está ahí cuando"
        " quieras. Responde ALTO para dejar de recibir mensajes.",
        "Hola de parte del equipo de la línea de crisis. Nos importas. No hace falta responder."
        " Responde ALTO para dejar de recibir mensajes.",
    ),
}
LANGUAGES = tuple(TEXTS)


def text_for(language: str, sequence: int, version: str = VERSION) -> str:
    """The body of message `sequence` (1-based) in `language` (no PHI: the same for everyone)."""
    if version != VERSION:
        raise KeyError(f"texts version {version} is not kept")
    texts = TEXTS[language]
    return texts[(sequence - 1) % len(texts)]
