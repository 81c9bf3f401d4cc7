"""The TwiML the provider understands: enough of Twilio's voice and messaging verbs to page and
acknowledge (<Say>, <Play>, <Pause>, <Gather>, <Redirect>, <Hangup>, <Reject>, <Message>).

Attribute names and defaults are Twilio's (Gather: action defaults to the current document,
method POST, finishOnKey `#`, no numDigits limit; Redirect: method POST), because notify's TwiML
will be written against Twilio's documentation. A verb it does not know is reported rather than
silently skipped, so a page relying on it shows up here instead of in production.

The XML comes from notify (a local, trusted peer); Python's expat refuses entity expansion
attacks since 3.7.1, and nothing here resolves external entities.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


class TwimlError(ValueError):
    """Not TwiML Twilio would run (Twilio's error 12100, document parse failure)."""


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Play:
    url: str


@dataclass(frozen=True)
class Pause:
    length: int = 1


@dataclass(frozen=True)
class Gather:
    action: str | None
    method: str
    num_digits: int | None
    finish_on_key: str
    prompts: list[Say | Play | Pause] = field(default_factory=list)


@dataclass(frozen=True)
class Redirect:
    url: str
    method: str


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Reject:
    reason: str


@dataclass(frozen=True)
class Message:
    body: str
    to: str | None


@dataclass(frozen=True)
class Unsupported:
    verb: str


Verb = Say | Play | Pause | Gather | Redirect | Hangup | Reject | Message | Unsupported


def parse(document: str) -> list[Verb]:
    """The verbs of a <Response>, in order; an empty body is an empty response."""
    if not document.strip():
        return []
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise TwimlError(f"not XML: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError(f"the root element is <{root.tag}>, not <Response>")
    try:
        return [_verb(element) for element in root]
    except TwimlError:
        raise
    except ValueError as exc:  # a numeric attribute that is not a number
        raise TwimlError(str(exc)) from exc


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()


def _method(element: ET.Element) -> str:
    method = element.get("method", "POST").upper()
    if method not in ("GET", "POST"):
        raise TwimlError(f"<{element.tag}> method must be GET or POST")
    return method


def _prompt(element: ET.Element) -> Say | Play | Pause:
    verb = _verb(element)
    if not isinstance(verb, Say | Play | Pause):
        raise TwimlError(f"<{element.tag}> cannot be nested in <Gather>")
    return verb


def _verb(element: ET.Element) -> Verb:
    tag = element.tag
    if tag == "Say":
        return Say(_text(element))
    if tag == "Play":
        return Play(_text(element))
    if tag == "Pause":
        return Pause(int(element.get("length", "1")))
    if tag == "Gather":
        num_digits = element.get("numDigits")
        return Gather(
            action=element.get("action"),
            method=_method(element),
            num_digits=int(num_digits) if num_digits else None,
            finish_on_key=element.get("finishOnKey", "#"),
            prompts=[_prompt(child) for child in element],
        )
    if tag == "Redirect":
        return Redirect(_text(element), _method(element))
    if tag == "Hangup":
        return Hangup()
    if tag == "Reject":
        return Reject(element.get("reason", "rejected"))
    if tag == "Message":
        body = element.find("Body")
        text = _text(body) if body is not None else _text(element)
        return Message(text, element.get("to"))
    return Unsupported(tag)
