"""Texts: the REST API's Messages (send, then delivery receipts on the StatusCallback) and
the phones' replies (posted to the number's "A message comes in" webhook, whose <Message>
answers reach the phone).

Opt-out follows Twilio's default keywords: STOP (and its synonyms) from a phone blocks sends
from that provider number to it with 21610 until the phone texts START; Twilio still forwards
the keyword to the webhook and answers with its own confirmation, which is shown on the phone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from deploy.phones import errors, twiml
from deploy.phones.runtime import Runtime
from deploy.phones.settings import is_e164
from deploy.phones.store import API_VERSION, Message, Phone, new_sid

log = logging.getLogger(__name__)

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_WORDS = frozenset({"HELP", "INFO"})
STOP_REPLY = (
    "You have successfully been unsubscribed. You will not receive any more messages from "
    "this number. Reply START to resubscribe."
)
START_REPLY = (
    "You have successfully been re-subscribed to messages from this number. Reply HELP for "
    "help. Reply STOP to unsubscribe. Msg&Data Rates May Apply."
)
HELP_REPLY = "Reply STOP to unsubscribe. Msg&Data Rates May Apply."
MAX_BODY = 1600


class Messaging:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def create(self, account_sid: str, form: Mapping[str, str]) -> Message:
        """POST Messages.json: checked as Twilio checks it, then queued; delivery follows."""
        to = form.get("To", "")
        from_ = form.get("From", "")
        service = form.get("MessagingServiceSid") or None
        body = form.get("Body", "")
        if not to:
            raise errors.missing(21604, "A 'To' phone number is required.")
        if not from_ and not service:
            raise errors.missing(21603, "A 'From' phone number is required.")
        if not is_e164(to):
            raise errors.invalid_to()
        if not body and not form.get("MediaUrl"):
            raise errors.missing(21602, "Message body is required.")
        if len(body) > MAX_BODY:
            raise errors.missing(
                21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if from_ and from_ not in self._rt.settings.sms_urls:  # not a number of this account
            raise errors.missing(
                21606,
                "The From phone number is not a valid, SMS-capable inbound phone number or "
                "short code for your account.",
            )
        sender = from_ or self._rt.settings.number
        phone = self._rt.store.phone(to)
        if sender in phone.opted_out:
            raise errors.unsubscribed()
        message = Message(
            sid=new_sid("SM"),
            account_sid=account_sid,
            to=to,
            from_=sender,
            body=body,
            direction="outbound-api",
            # Twilio: "accepted" when a Messaging Service is to pick the sender
            status="accepted" if service and not from_ else "queued",
            status_callback=form.get("StatusCallback") or None,
            messaging_service_sid=service,
        )
        phone.last_contact = sender
        self._rt.store.add_message(phone, message)
        if not phone.reports_first:
            self._rt.spawn(self._deliver(phone, message))
        return message

    async def report_first(self, message: Message) -> None:
        """For a phone set to `reports_first`: its status callbacks, before the REST answer."""
        phone = self._rt.store.phone(message.to)
        if phone.reports_first:
            await self._deliver(phone, message)

    async def _deliver(self, phone: Phone, message: Message) -> None:
        """The network's side: sent, then delivered (or undelivered, 30003, when the phone is
        unreachable), each reported on the StatusCallback as Twilio does."""
        await self._status(message, "sent")
        if phone.unreachable:
            message.error_code, message.error_message = errors.UNREACHABLE
            await self._status(message, "undelivered")
        else:
            await self._status(message, "delivered")

    async def _status(self, message: Message, status: str) -> None:
        message.set_status(status)
        if not message.status_callback:
            return
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "From": message.from_,
            "MessageSid": message.sid,
            "MessageStatus": status,
            "SmsSid": message.sid,
            "SmsStatus": status,
            "To": message.to,
        }
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        if message.error_code is not None:
            params["ErrorCode"] = str(message.error_code)
        callback = await self._rt.webhooks.send("status", message.status_callback, params)
        message.callbacks.append(callback)

    async def reply(self, number: str, body: str, to: str | None = None) -> Message:
        """A text typed on phone `number`: recorded, handled for opt-out keywords, posted to
        the inbound webhook; each <Message> of its answer is delivered back to the phone."""
        phone = self._rt.store.phone(number)
        provider_number = to or phone.last_contact or self._rt.settings.number
        message = Message(
            sid=new_sid("SM"),
            account_sid=self._rt.settings.account_sid,
            to=provider_number,
            from_=number,
            body=body,
            direction="inbound",
            status="received",
        )
        self._rt.store.add_message(phone, message)
        keyword = body.strip().upper()
        if keyword in STOP_WORDS:
            phone.opted_out.add(provider_number)
            self._auto_reply(phone, provider_number, STOP_REPLY)
        elif keyword in START_WORDS and provider_number in phone.opted_out:
            phone.opted_out.discard(provider_number)
            self._auto_reply(phone, provider_number, START_REPLY)
        elif keyword in HELP_WORDS:
            self._auto_reply(phone, provider_number, HELP_REPLY)
        # Each number of the account has its own webhook (PHONES_NUMBERS); a number that is
        # not the account's forwards nowhere, as Twilio would never receive it.
        url = self._rt.settings.sms_urls.get(provider_number)
        if url is None:
            log.info("inbound %s: %s has no webhook, not forwarded", message.sid, provider_number)
            return message
        params = {
            "AccountSid": message.account_sid,
            "ApiVersion": API_VERSION,
            "Body": body,
            "From": number,
            "MessageSid": message.sid,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsMessageSid": message.sid,
            "SmsSid": message.sid,
            "SmsStatus": "received",
            "To": provider_number,
        }
        callback = await self._rt.webhooks.send("incoming", url, params)
        message.callbacks.append(callback)
        if callback.error is None:
            self._answer(phone, provider_number, callback.body, message)
        return message

    def _answer(self, phone: Phone, provider_number: str, document: str, inbound: Message) -> None:
        """The webhook's TwiML: each <Message> is a text to the phone (or its `to`)."""
        try:
            verbs = twiml.parse(document)
        except twiml.TwimlError as exc:
            inbound.error_code, inbound.error_message = 12100, f"Document parse failure: {exc}"
            return
        for verb in verbs:
            if not isinstance(verb, twiml.Message):
                continue
            target = self._rt.store.phone(verb.to) if verb.to else phone
            if provider_number in target.opted_out:
                inbound.error_code, inbound.error_message = 21610, "unsubscribed recipient"
                continue
            self._auto_reply(target, provider_number, verb.body)

    def _auto_reply(self, phone: Phone, sender: str, body: str) -> None:
        """A text to the phone that the provider delivers at once (a TwiML or opt-out reply)."""
        reply = Message(
            sid=new_sid("SM"),
            account_sid=self._rt.settings.account_sid,
            to=phone.number,
            from_=sender,
            body=body,
            direction="outbound-reply",
            status="delivered",
        )
        self._rt.store.add_message(phone, reply)
