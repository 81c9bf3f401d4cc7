"""What the provider remembers: the phones it has seen, each with its last texts and calls.

In memory on purpose: this is a local stand-in for Twilio, started afresh with `make run`; a
restart forgetting its phones loses nothing that matters. Bounded so that a long run (or a load
test that pages many numbers) cannot grow it without limit: each phone keeps its last
`max_items` texts and calls, and the store its last `max_phones` phones.
"""

from __future__ import annotations

import collections
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

API_VERSION = "2010-04-01"


def new_sid(prefix: str) -> str:
    """A Twilio-shaped sid: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def now() -> datetime:
    return datetime.now(UTC)


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format in its JSON and its webhooks (RFC 2822, GMT)."""
    return None if moment is None else format_datetime(moment, usegmt=True)


@dataclass
class Callback:
    """One request the provider made (status callback, voice URL, Gather action, inbound SMS)
    and what it got back: shown on the pages and returned by the test API."""

    kind: str
    url: str
    method: str
    params: dict[str, str]
    at: datetime = field(default_factory=now)
    status_code: int | None = None
    body: str = ""
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self.url,
            "method": self.method,
            "params": self.params,
            "at": self.at.isoformat(),
            "status_code": self.status_code,
            "body": self.body,
            "error": self.error,
        }


@dataclass
class Message:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    direction: str  # outbound-api, outbound-reply, inbound
    status: str
    status_callback: str | None = None
    messaging_service_sid: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    date_created: datetime = field(default_factory=now)
    date_updated: datetime = field(default_factory=now)
    date_sent: datetime | None = None
    callbacks: list[Callback] = field(default_factory=list)

    def set_status(self, status: str) -> None:
        self.status = status
        self.date_updated = now()
        if status == "sent":
            self.date_sent = self.date_updated

    def resource(self) -> dict[str, Any]:
        """The Message resource as Twilio's REST API answers it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated),
            "direction": self.direction,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }

    def as_json(self) -> dict[str, Any]:
        """The resource plus what the test API adds: the callbacks made and their answers, and
        when it was created to the microsecond (Twilio's dates have whole seconds; the bench
        times POST-to-text with it)."""
        return {
            **self.resource(),
            "created_at": self.date_created.isoformat(),
            "callbacks": [c.as_json() for c in self.callbacks],
        }


@dataclass
class Gathering:
    """A <Gather> waiting for digits: where they go, and what runs if none come."""

    action: str
    method: str
    num_digits: int | None
    finish_on_key: str
    rest: list[Any]  # the verbs after the Gather, run when it ends without input
    document_url: str | None
    digits: str = ""


@dataclass
class Call:
    sid: str
    account_sid: str
    to: str
    from_: str
    url: str | None
    method: str
    twiml: str | None
    status_callback: str | None
    status_callback_method: str
    events: frozenset[str]
    machine_detection: str | None
    timeout: int
    status: str = "queued"
    answered_by: str | None = None
    date_created: datetime = field(default_factory=now)
    date_updated: datetime = field(default_factory=now)
    start_time: datetime | None = None
    end_time: datetime | None = None
    gathering: Gathering | None = None
    #: What the phone heard and did, in order ("says: …", "pressed 1", …).
    transcript: list[str] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    sequence: int = 0

    ENDED = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})

    @property
    def ended(self) -> bool:
        return self.status in self.ENDED

    @property
    def duration(self) -> int | None:
        if self.start_time is None or self.end_time is None:
            return None
        return int((self.end_time - self.start_time).total_seconds())

    def set_status(self, status: str) -> None:
        self.status = status
        self.date_updated = now()
        if status == "in-progress":
            self.start_time = self.date_updated
        elif self.ended:
            self.end_time = self.date_updated

    def resource(self) -> dict[str, Any]:
        """The Call resource as Twilio's REST API answers it."""
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        duration = self.duration
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": rfc2822(self.date_created),
            "date_updated": rfc2822(self.date_updated),
            "direction": "outbound-api",
            "duration": None if duration is None else str(duration),
            "end_time": rfc2822(self.end_time),
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": self.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": rfc2822(self.start_time),
            "status": self.status,
            "subresource_uris": {
                "notifications": f"{uri}/Notifications.json",
                "recordings": f"{uri}/Recordings.json",
                "events": f"{uri}/Events.json",
            },
            "to": self.to,
            "to_formatted": self.to,
            "trunk_sid": None,
            "uri": f"{uri}.json",
        }

    def as_json(self) -> dict[str, Any]:
        return {
            **self.resource(),
            "waiting_for_digits": self.gathering is not None,
            "transcript": list(self.transcript),
            "callbacks": [c.as_json() for c in self.callbacks],
        }


@dataclass
class Phone:
    """A phone on the far side of the network, as the provider sees it."""

    number: str
    messages: collections.deque[Message]
    calls: collections.deque[Call]
    #: Texts to it end `undelivered` (30003) and calls `failed`: a phone switched off.
    unreachable: bool = False
    #: The provider numbers it texted STOP to: sending from those fails with 21610.
    opted_out: set[str] = field(default_factory=set)
    #: The provider number that last reached it: where its replies go.
    last_contact: str | None = None
    #: Texts to it are reported on (sent, delivered) before the REST API answers the send:
    #: the race a sender must handle, made certain (the test API sets it).
    reports_first: bool = False

    def timeline(self) -> list[Message | Call]:
        """Its texts and calls, newest first."""
        items: list[Message | Call] = [*self.messages, *self.calls]
        return sorted(items, key=lambda item: item.date_created, reverse=True)


class Store:
    """The phones, and the messages and calls by sid (for the REST API and the test API)."""

    def __init__(self, max_items: int, max_phones: int) -> None:
        self._max_items = max_items
        self._max_phones = max_phones
        self.phones: collections.OrderedDict[str, Phone] = collections.OrderedDict()
        self.messages: dict[str, Message] = {}
        self.calls: dict[str, Call] = {}

    def phone(self, number: str) -> Phone:
        """The phone of `number`, made on first sight; the least recently used one is
        forgotten past `max_phones`."""
        phone = self.phones.get(number)
        if phone is None:
            phone = Phone(
                number,
                collections.deque(maxlen=self._max_items),
                collections.deque(maxlen=self._max_items),
            )
            self.phones[number] = phone
            while len(self.phones) > self._max_phones:
                _, gone = self.phones.popitem(last=False)
                for message in gone.messages:
                    self.messages.pop(message.sid, None)
                for call in gone.calls:
                    self.calls.pop(call.sid, None)
        self.phones.move_to_end(number)
        return phone

    def add_message(self, phone: Phone, message: Message) -> None:
        if len(phone.messages) == phone.messages.maxlen:
            self.messages.pop(phone.messages[0].sid, None)
        phone.messages.append(message)
        self.messages[message.sid] = message

    def add_call(self, phone: Phone, call: Call) -> None:
        if len(phone.calls) == phone.calls.maxlen:
            self.calls.pop(phone.calls[0].sid, None)
        phone.calls.append(call)
        self.calls[call.sid] = call
