"""What a reply to a page says, read as a command: acknowledge (the newest alert, all of them,
or the one a code names), stop or start texts, or nothing we understand. Only the command is
ever kept (deliveries.reply); the free text of a reply is not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

#: The alphabet of alert codes: no letters or digits that read alike (0/O/Q, 1/I/L, 5/S, 8/B,
#: Z/2, U/V, G/6), and none of the letters of STOP or QUIT, so no code is a keyword.
CODE_ALPHABET = "234679ACDEFHJKMNPRTWXY"
CODE_LENGTH = 4
#: Twilio's own opt-out and opt-in keywords (its Advanced Opt-Out defaults).
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
)
START_WORDS = frozenset({"START", "UNSTOP"})
ACK_WORDS = frozenset({"1", "A", "ACK", "ACKNOWLEDGE", "OK"})
ACK_ALL = frozenset({"AA", "ACK ALL", "1 ALL", "ALL", "ACKALL"})

Kind = Literal["ack", "ack_all", "ack_code", "stop", "start", "unknown"]


@dataclass(frozen=True)
class Command:
    kind: Kind
    #: The alert's code, for `ack_code`.
    code: str | None = None

    @property
    def recorded(self) -> str:
        """How the reply is kept on the page: the command, never the reply's text."""
        return {
            "ack": "1",
            "ack_all": "ACK ALL",
            "ack_code": self.code or "",
            "stop": "STOP",
            "start": "START",
            "unknown": "(not understood)",
        }[self.kind]


_CODE = re.compile(f"(?:ACK\\s+)?([{CODE_ALPHABET}]{{{CODE_LENGTH}}})")


def read(body: str) -> Command:
    """The command a reply's text gives: case, spacing and surrounding punctuation ignored."""
    words = re.sub(r"[^0-9A-Z]+", " ", body.upper()).strip()
    if words in STOP_WORDS:
        return Command("stop")
    if words in START_WORDS:
        return Command("start")
    if words in ACK_ALL:
        return Command("ack_all")
    if words in ACK_WORDS:
        return Command("ack")
    if match := _CODE.fullmatch(words):
        return Command("ack_code", code=match.group(1))
    return Command("unknown")
