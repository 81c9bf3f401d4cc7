"""Calls: the REST API's Calls, rung on the phone's page, and the TwiML conversation once
someone (or a machine) answers.

The call's life is Twilio's: queued, then initiated and ringing (each reported on the
StatusCallback only when asked for in StatusCallbackEvent; `completed` is reported by
default), then either answered (in-progress: the Url is fetched and its TwiML followed) or
ended as busy, no-answer (also after Timeout seconds of ringing) or failed (an unreachable
phone). A call that runs out of TwiML, meets <Hangup>, or is hung up ends `completed` with
its CallDuration.

What a person does is explicit, through the page or the test API, so tests never race a
timer: answer, machine (voicemail), press digits, silence (a <Gather> timing out with no
input), hang up, no answer, busy. Each step waits for the webhooks it causes, one at a time
per call (a lock), so the state seen after it is settled.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from urllib.parse import urljoin

from deploy.phones import errors, twiml
from deploy.phones.runtime import Runtime
from deploy.phones.settings import is_e164
from deploy.phones.store import API_VERSION, Call, Gathering, new_sid, now, rfc2822

log = logging.getLogger(__name__)

EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
#: Redirects followed in one step before the call is ended (a loop without a <Gather>).
MAX_REDIRECTS = 20


class CallError(Exception):
    """A step that does not apply to the call as it is (409 in the test API)."""


class Voice:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._locks: dict[str, asyncio.Lock] = {}

    def create(self, account_sid: str, form: Mapping[str, str], events: list[str]) -> Call:
        """POST Calls.json: checked as Twilio checks it, then queued; the phone rings next."""
        to, from_ = form.get("To", ""), form.get("From", "")
        if not to:
            raise errors.missing(21201, "No 'To' number is specified")
        if not from_:
            raise errors.missing(21213, "No 'From' number is specified")
        if not is_e164(to):
            raise errors.invalid_to()
        if from_ not in self._rt.settings.sms_urls:
            raise errors.missing(
                21210, "The source phone number provided is not yet verified for your account."
            )
        url, document = form.get("Url") or None, form.get("Twiml") or None
        if url is None and document is None:
            raise errors.missing(21205, "Url parameter is required.")
        if url is not None and not re.match(r"https?://[^/?#]+", url):
            raise errors.missing(21205, "Url is not a valid URL.")
        wanted = {word.lower() for value in events for word in value.split()} or {"completed"}
        if not wanted <= EVENTS:
            raise errors.missing(21626, "Invalid StatusCallbackEvent")
        try:
            timeout = min(max(int(form.get("Timeout", "60")), 1), 600)
        except ValueError:
            raise errors.missing(21217, "Invalid Timeout") from None
        call = Call(
            sid=new_sid("CA"),
            account_sid=account_sid,
            to=to,
            from_=from_,
            url=url,
            method=(form.get("Method") or "POST").upper(),
            twiml=document,
            status_callback=form.get("StatusCallback") or None,
            status_callback_method=(form.get("StatusCallbackMethod") or "POST").upper(),
            events=frozenset(wanted),
            machine_detection=form.get("MachineDetection") or None,
            timeout=timeout,
        )
        phone = self._rt.store.phone(to)
        phone.last_contact = from_
        self._rt.store.add_call(phone, call)
        for gone in [sid for sid in self._locks if sid not in self._rt.store.calls]:
            del self._locks[gone]  # calls the store no longer keeps
        self._locks[call.sid] = asyncio.Lock()
        self._rt.spawn(self._ring(call, unreachable=phone.unreachable))
        return call

    def call(self, sid: str) -> Call:
        call = self._rt.store.calls.get(sid)
        if call is None:
            raise KeyError(sid)
        return call

    async def _ring(self, call: Call, *, unreachable: bool) -> None:
        async with self._locks[call.sid]:
            if call.status != "queued":  # answered or cancelled before it rang
                return
            call.set_status("initiated")
            await self._event(call, "initiated")
            if unreachable:
                await self._end(call, "failed")
                return
            call.set_status("ringing")
            await self._event(call, "ringing")
        self._rt.spawn(self._ring_timeout(call), timer=True)

    async def _ring_timeout(self, call: Call) -> None:
        """Twilio's Timeout: ringing this long unanswered ends the call as no-answer."""
        await asyncio.sleep(call.timeout)
        async with self._locks[call.sid]:
            if call.status == "ringing":
                call.transcript.append(f"nobody answered in {call.timeout} s")
                await self._end(call, "no-answer")

    # -- what the person on the phone does -------------------------------------------------

    async def answer(self, sid: str, *, machine: bool = False) -> Call:
        call = self.call(sid)
        async with self._locks[sid]:
            self._expect(call, "ringing", "queued")
            if call.machine_detection:
                call.answered_by = "machine_start" if machine else "human"
            call.set_status("in-progress")
            call.transcript.append("answered by voicemail" if machine else "answered")
            await self._event(call, "answered")
            if call.url is not None:
                await self._fetch(call, call.url, call.method, {})
            else:
                await self._run(call, self._parse(call, call.twiml or ""), None, 0)
        return call

    async def press(self, sid: str, digits: str) -> Call:
        """Keys pressed: heard only by a waiting <Gather>, which submits to its action once
        numDigits are in or finishOnKey is pressed."""
        call = self.call(sid)
        if not re.fullmatch(r"[0-9*#]{1,20}", digits):
            raise CallError("digits are 0-9, * and #")
        async with self._locks[sid]:
            self._expect(call, "in-progress")
            call.transcript.append(f"pressed {digits}")
            gathering = call.gathering
            if gathering is None:
                call.transcript.append("(no <Gather> was listening)")
                return call
            for key in digits:
                if key == gathering.finish_on_key:
                    await self._submit(call, gathering, key)
                    return call
                gathering.digits += key
                if gathering.num_digits and len(gathering.digits) >= gathering.num_digits:
                    await self._submit(call, gathering, None)
                    return call
        return call

    async def silence(self, sid: str) -> Call:
        """The <Gather> times out: the digits pressed so far go to its action, as Twilio sends
        them; with none, Twilio goes on with the verbs after it."""
        call = self.call(sid)
        async with self._locks[sid]:
            self._expect(call, "in-progress")
            gathering = call.gathering
            if gathering is None:
                raise CallError("no <Gather> is waiting for input")
            if gathering.digits:
                call.transcript.append("no more input")
                await self._submit(call, gathering, None)
                return call
            call.gathering = None
            call.transcript.append("no input")
            await self._run(call, gathering.rest, gathering.document_url, 0)
        return call

    async def hangup(self, sid: str) -> Call:
        """Hung up by the phone: completed when answered; declined while ringing is `busy`
        (what carriers report for a rejected call)."""
        call = self.call(sid)
        async with self._locks[sid]:
            self._expect(call, "in-progress", "ringing", "queued")
            call.transcript.append("hung up")
            await self._end(call, "completed" if call.status == "in-progress" else "busy")
        return call

    async def unanswered(self, sid: str, status: str) -> Call:
        """The page's No answer / Busy / Fail: the call ends with that status, unanswered."""
        call = self.call(sid)
        async with self._locks[sid]:
            self._expect(call, "ringing", "queued")
            call.transcript.append("not answered" if status == "no-answer" else status)
            await self._end(call, status)
        return call

    async def cancel(self, sid: str, status: str) -> Call:
        """POST Calls/{sid}.json Status=canceled|completed: a ringing call is canceled, a
        live one completed; an ended call is left as it is."""
        call = self.call(sid)
        async with self._locks[sid]:
            if call.status in ("queued", "initiated", "ringing"):
                await self._end(call, "canceled")
            elif call.status == "in-progress" and status == "completed":
                call.transcript.append("ended through the REST API")
                await self._end(call, "completed")
        return call

    # -- the TwiML conversation ------------------------------------------------------------

    def _expect(self, call: Call, *statuses: str) -> None:
        if call.status not in statuses:
            raise CallError(f"the call is {call.status}, not {' or '.join(statuses)}")

    def _params(self, call: Call) -> dict[str, str]:
        """What Twilio sends with every voice request about this call."""
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": call.status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": "outbound-api",
            "From": call.from_,
            "To": call.to,
        }
        if call.answered_by:
            params["AnsweredBy"] = call.answered_by
        return params

    def _parse(self, call: Call, document: str) -> list[twiml.Verb]:
        try:
            return twiml.parse(document)
        except twiml.TwimlError as exc:
            call.transcript.append(f"application error (12100): {exc}")
            return [twiml.Say("We are sorry, an application error has occurred."), twiml.Hangup()]

    async def _fetch(
        self, call: Call, url: str, method: str, extra: dict[str, str], depth: int = 0
    ) -> None:
        """Fetch a TwiML document for the call and follow it; an unusable answer is Twilio's
        "application error" and the call ends."""
        params = {**self._params(call), **extra}
        callback = await self._rt.webhooks.send("voice", url, params, method)
        call.callbacks.append(callback)
        if callback.error is not None:
            call.transcript.append(f"application error (11200): {callback.error}")
            await self._end(call, "completed")
            return
        await self._run(call, self._parse(call, callback.body), url, depth)

    async def _run(
        self, call: Call, verbs: list[twiml.Verb], document_url: str | None, depth: int
    ) -> None:
        for index, verb in enumerate(verbs):
            if call.ended:
                return
            if isinstance(verb, twiml.Say | twiml.Play | twiml.Pause):
                call.transcript.append(_heard(verb))
            elif isinstance(verb, twiml.Gather):
                call.transcript.extend(_heard(prompt) for prompt in verb.prompts)
                action = verb.action or document_url
                if action is None:
                    call.transcript.append("application error: <Gather> without an action")
                    break
                call.gathering = Gathering(
                    action=_absolute(document_url, action),
                    method=verb.method,
                    num_digits=verb.num_digits,
                    finish_on_key=verb.finish_on_key,
                    rest=list(verbs[index + 1 :]),
                    document_url=document_url,
                )
                call.transcript.append("waiting for digits")
                return
            elif isinstance(verb, twiml.Redirect):
                if depth >= MAX_REDIRECTS:
                    call.transcript.append(f"more than {MAX_REDIRECTS} redirects; hanging up")
                    break
                target = _absolute(document_url, verb.url)
                await self._fetch(call, target, verb.method, {}, depth + 1)
                return
            elif isinstance(verb, twiml.Hangup | twiml.Reject):
                break
            else:
                call.transcript.append(f"unsupported verb <{_name(verb)}> skipped")
        if not call.ended:
            await self._end(call, "completed")

    async def _submit(self, call: Call, gathering: Gathering, finished_on: str | None) -> None:
        call.gathering = None
        extra = {"Digits": gathering.digits}
        if finished_on is not None:
            extra["FinishedOnKey"] = finished_on
        await self._fetch(call, gathering.action, gathering.method, extra)

    async def _end(self, call: Call, status: str) -> None:
        call.gathering = None
        call.set_status(status)
        log.info("call %s %s", call.sid, status)
        await self._event(call, "completed")

    async def _event(self, call: Call, event: str) -> None:
        """A call progress event on the StatusCallback, if one was asked for."""
        if not call.status_callback or event not in call.events:
            return
        call.sequence += 1
        params = {
            **self._params(call),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(call.sequence - 1),
            "Timestamp": rfc2822(now()) or "",
        }
        if call.ended:
            params["CallDuration"] = str(call.duration or 0)
        callback = await self._rt.webhooks.send(
            "status", call.status_callback, params, call.status_callback_method
        )
        call.callbacks.append(callback)


def _absolute(document_url: str | None, url: str) -> str:
    """Twilio resolves a relative action or redirect against the current document's URL."""
    return urljoin(document_url, url) if document_url else url


def _heard(verb: twiml.Say | twiml.Play | twiml.Pause) -> str:
    if isinstance(verb, twiml.Say):
        return f"says: {verb.text}"
    if isinstance(verb, twiml.Play):
        return f"plays {verb.url}"
    return f"pause {verb.length} s"


def _name(verb: twiml.Verb) -> str:
    return verb.verb if isinstance(verb, twiml.Unsupported) else type(verb).__name__
