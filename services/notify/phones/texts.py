"""What a phone is sent: the text of a page, and the TwiML of a call. No PHI: the level, the
alert's code, how to acknowledge and the console's link (the case is there, after sign-in)."""

from __future__ import annotations

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

#: One SMS segment in GSM-7.
SMS_LIMIT = 160
#: A call says its prompt this many times before it gives up on a key.
PROMPTS = 2


def sms_text(*, risk_level: str, code: str, case_url: str) -> str:
    """The page as a text, within one segment: the link goes first when the whole is too long
    (the reply still acknowledges)."""
    text = (
        f"Crisis triage: {risk_level.upper()} risk alert {code}. Reply {code} or 1 to acknowledge."
    )
    with_link = f"{text} {case_url}"
    return with_link if len(with_link) <= SMS_LIMIT else text


def message(text: str | None) -> str:
    """The TwiML answering a text: one message back, or none."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


def call_prompt(*, risk_level: str, gather_url: str) -> str:
    """A call's TwiML: the level and "press 1 to acknowledge", said twice, each waiting for one
    key; then goodbye. Only a 1 acknowledges (the gather route)."""
    response = VoiceResponse()
    for _ in range(PROMPTS):
        gather = response.gather(num_digits=1, action=gather_url, method="POST", timeout=6)
        gather.say(
            f"Crisis triage. A screening was assessed at {risk_level} risk. "
            "Press 1 to acknowledge this alert."
        )
    response.say("No key was pressed. The alert was not acknowledged. Goodbye.")
    response.hangup()
    return str(response)


def call_says(text: str, *, again: str | None = None) -> str:
    """A call's TwiML that says `text` and hangs up, or asks once more (`again`: the gather
    route) when the key pressed was not a 1."""
    response = VoiceResponse()
    if again is not None:
        gather = response.gather(num_digits=1, action=again, method="POST", timeout=6)
        gather.say(text)
        response.say("Goodbye.")
    else:
        response.say(text)
    response.hangup()
    return str(response)


def hang_up() -> str:
    """A call answered by a machine: nothing is said to it (a voicemail is no acknowledgement)."""
    response = VoiceResponse()
    response.hangup()
    return str(response)
