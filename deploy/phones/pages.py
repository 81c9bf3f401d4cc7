"""The phones, as web pages: every number the provider has texted or called, and for each its
texts and calls (newest first) with a reply box and, for a live call, the buttons a person on
the phone would have.

Server-rendered with plain forms (POST, then a redirect back), so everything works with the
keyboard and without a script; the one small inline script reloads the page every few seconds
while nobody is using it, so a new page or call shows up by itself. No external assets.

A form POST from another site is refused (its Origin is not this server): the provider signs
what a phone sends, and notify trusts those signatures, so a web page open in the developer's
browser must not be able to acknowledge an alert through it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import DictLoader, Environment, select_autoescape

from deploy.phones.local import e164, perform, same_origin
from deploy.phones.messaging import Messaging
from deploy.phones.runtime import Runtime
from deploy.phones.store import Call
from deploy.phones.voice import CallError, Voice

router = APIRouter(dependencies=[Depends(same_origin)])

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{% endblock %} · local phones</title>
<style>
body{font-family:system-ui,sans-serif;max-width:48rem;margin:1rem auto;padding:0 1rem;
line-height:1.4;color:#111}
a{color:#0645ad} :focus{outline:3px solid #f90;outline-offset:2px}
article{border:1px solid #bbb;border-radius:.4rem;padding:.5rem .8rem;margin:.6rem 0}
.in{background:#eef6ff} .meta{color:#444;font-size:.9rem}
button{font-size:1rem;margin:.15rem .2rem .15rem 0;padding:.3rem .7rem}
form.inline{display:inline} label{font-weight:600}
</style></head><body>
<header><p><a href="/">All phones</a></p></header>
<main>{% block main %}{% endblock %}</main>
<script>
// Reload while nobody is using the page: not while a control has the keyboard focus (a
// keyboard user would be sent back to the top) nor while a field holds typed text.
setInterval(function () {
  var focused = document.activeElement && document.activeElement !== document.body;
  var typed = Array.prototype.some.call(document.querySelectorAll("input[type=text]"),
    function (f) { return f.value !== ""; });
  if (!focused && !typed) { location.reload(); }
}, 3000);
</script>
</body></html>"""

_INDEX = """{% extends "layout" %}{% block title %}Phones{% endblock %}{% block main %}
<h1>Local phones</h1>
<p>Texts and calls sent through this local Twilio stand-in (account {{ account }}).
A reply goes to the number that last reached the phone, and on to that number's webhook:</p>
<ul>{% for number, url in sms_urls.items() %}
<li>{{ number }}: {{ url or "nowhere (no webhook set)" }}</li>{% endfor %}</ul>
{% if phones %}<ul>
{% for phone in phones %}<li><a href="/phones/{{ phone.number | urlpart }}">{{ phone.number }}</a>
 — {{ phone.messages | length }} texts, {{ phone.calls | length }} calls
 {%- if live[phone.number] %}, <strong>{{ live[phone.number] }} live call(s)</strong>
 {%- endif %}</li>
{% endfor %}</ul>
{% else %}<p>No phone has been texted or called yet.</p>{% endif %}
{% endblock %}"""

_PHONE = """{% extends "layout" %}{% block title %}{{ phone.number }}{% endblock %}
{% block main %}
<h1>Phone {{ phone.number }}</h1>
<form method="post" action="/phones/{{ phone.number | urlpart }}/reply">
<p><label for="body">Reply by text</label><br>
<input type="text" id="body" name="body" size="40" maxlength="1600" required
 autocomplete="off"> <button type="submit">Send</button></p></form>
<form method="post" action="/phones/{{ phone.number | urlpart }}/reachable">
<input type="hidden" name="unreachable" value="{{ 'false' if phone.unreachable else 'true' }}">
<p>{{ "Unreachable (switched off): texts end undelivered, calls fail." if phone.unreachable
 else "Reachable." }} <button type="submit">{{ "Switch on" if phone.unreachable
 else "Switch off" }}</button></p></form>
{% if phone.opted_out %}<p>Opted out (STOP) from {{ phone.opted_out | sort | join(", ") }}.</p>
{% endif %}
<h2>Texts and calls, newest first</h2>
{% for item in items %}
{% if item.kind == "call" %}{% set call = item.call %}
<article aria-labelledby="h-{{ call.sid }}">
<h3 id="h-{{ call.sid }}">Call from {{ call.from_ }} — {{ call.status }}
 {%- if call.answered_by %} ({{ call.answered_by }}){% endif %}</h3>
<p class="meta">{{ call.date_created.strftime("%H:%M:%S UTC") }} · {{ call.sid }}</p>
{% if call.transcript %}<ol>{% for line in call.transcript %}<li>{{ line }}</li>{% endfor %}
</ol>{% endif %}
{% if not call.ended %}<div role="group" aria-label="Call actions">
{% set base = "/phones/" ~ (phone.number | urlpart) ~ "/calls/" ~ call.sid %}
{% if call.status == "in-progress" %}
<form class="inline" method="post" action="{{ base }}/press"><input type="hidden"
 name="digits" value="1"><button type="submit">Press 1</button></form>
<form class="inline" method="post" action="{{ base }}/press">
<label for="d-{{ call.sid }}">Digits</label> <input type="text" id="d-{{ call.sid }}"
 name="digits" size="4" inputmode="numeric" pattern="[0-9*#]{1,20}" required autocomplete="off">
<button type="submit">Press</button></form>
{% if call.gathering %}<form class="inline" method="post" action="{{ base }}/silence">
<button type="submit">Say nothing</button></form>{% endif %}
<form class="inline" method="post" action="{{ base }}/hangup"><button
 type="submit">Hang up</button></form>
{% else %}
<form class="inline" method="post" action="{{ base }}/answer"><button
 type="submit">Answer</button></form>
<form class="inline" method="post" action="{{ base }}/machine"><button
 type="submit">Voicemail</button></form>
<form class="inline" method="post" action="{{ base }}/hangup"><button
 type="submit">Hang up</button></form>
<form class="inline" method="post" action="{{ base }}/no-answer"><button
 type="submit">No answer</button></form>
<form class="inline" method="post" action="{{ base }}/busy"><button
 type="submit">Busy</button></form>
{% endif %}</div>{% endif %}
</article>
{% else %}{% set m = item.message %}
<article class="{{ 'in' if m.direction == 'inbound' else 'out' }}">
<h3>{{ "Sent by this phone to " ~ m.to if m.direction == "inbound"
 else "Text from " ~ m.from_ }} — {{ m.status }}{% if m.error_code %}
 (error {{ m.error_code }}){% endif %}</h3>
<p class="meta">{{ m.date_created.strftime("%H:%M:%S UTC") }} · {{ m.sid }}</p>
<p>{{ m.body }}</p>
</article>
{% endif %}
{% else %}<p>Nothing yet.</p>{% endfor %}
{% endblock %}"""

_env = Environment(
    loader=DictLoader({"layout": _LAYOUT, "index": _INDEX, "phone": _PHONE}),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
_env.filters["urlpart"] = lambda value: quote(str(value), safe="")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _back(number: str) -> RedirectResponse:
    return RedirectResponse(f"/phones/{quote(number, safe='')}", status_code=303)


@router.get("/", response_class=HTMLResponse)
async def index(request: Request) -> str:
    runtime = _runtime(request)
    phones = list(reversed(runtime.store.phones.values()))
    live = {p.number: sum(not c.ended for c in p.calls) for p in phones}
    return _env.get_template("index").render(
        phones=phones,
        live=live,
        account=runtime.settings.account_sid,
        sms_urls=runtime.settings.sms_urls,
    )


@router.get("/phones/{number}", response_class=HTMLResponse)
async def phone_page(request: Request, number: str) -> str:
    phone = _runtime(request).store.phones.get(number)
    if phone is None:
        raise HTTPException(404, "no such phone")
    items = [
        {"kind": "call", "call": item}
        if isinstance(item, Call)
        else {"kind": "text", "message": item}
        for item in phone.timeline()
    ]
    return _env.get_template("phone").render(phone=phone, items=items)


@router.post("/phones/{number}/reply")
async def reply(request: Request, number: str, body: Annotated[str, Form()]) -> RedirectResponse:
    messaging: Messaging = request.app.state.messaging
    await messaging.reply(e164(number), body[:1600])
    return _back(number)


@router.post("/phones/{number}/reachable")
async def reachable(
    request: Request, number: str, unreachable: Annotated[str, Form()]
) -> RedirectResponse:
    _runtime(request).store.phone(e164(number)).unreachable = unreachable == "true"
    return _back(number)


@router.post("/phones/{number}/calls/{sid}/{action}")
async def act(
    request: Request,
    number: str,
    sid: str,
    action: str,
    digits: Annotated[str | None, Form()] = None,
) -> RedirectResponse:
    voice: Voice = request.app.state.voice
    try:
        await perform(voice, sid, action, digits)
    except KeyError:
        raise HTTPException(404, "no such call or action") from None
    except CallError:
        pass  # the call moved on meanwhile (another tab, the timeout): the page shows how
    return _back(number)
