"""Outgoing webhooks: the contract's signature, the retry schedule, and how an answer is read.

Alert pages and reminders (notify) and EHR rest-hooks (intake) are all signed POSTs retried with
backoff; the receiving side verifies them the same way, so the scheme lives here once, and so
does the one way they are sent (`post_signed`): within a total deadline, reading at most a few KB
of the answer, so that no receiver, however slow or endless its answer, holds a sender's slot or
its memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
import ssl
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import certifi
import httpx
from yarl import URL

from shared.outbound import GuardedResolver, OutboundPolicy, UnsafeUrl

#: The most of an answer's body read: nobody needs it (the status says it all), and reading a
#: little lets a short answer end cleanly and its connection be reused.
READ_LIMIT = 4096


def webhook_signature(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """`v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`, one per secret during a rotation."""
    return ",".join(
        "v1=" + hmac.new(s.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        for s in secrets
    )


def signed_headers(
    secrets: Sequence[str],
    body: bytes,
    *,
    event_id: object,
    content_type: str = "application/json",
) -> dict[str, str]:
    """The contract's headers of one signed POST. `event_id` stays the same across retries of
    one delivery, so a receiver can deduplicate."""
    timestamp = int(time.time())
    return {
        "Content-Type": content_type,
        "X-Triage-Event-Id": str(event_id),
        "X-Triage-Timestamp": str(timestamp),
        "X-Triage-Signature": webhook_signature(secrets, timestamp, body),
    }


def backoff_seconds(attempt: int, *, base: float, ceiling: float) -> float:
    """Exponential backoff with jitter on the upper half, so senders do not retry in step."""
    top = min(ceiling, base * 2 ** min(max(0, attempt - 1), 32))  # no overflow, ever
    return top / 2 + random.random() * top / 2


def classify(status: int) -> str:
    """2xx delivered; 408, 425, 429 and 5xx may pass; other answers will not change by retrying."""
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 425, 429) or status >= 500:
        return "temporary_failure"
    return "permanent_failure"


def redact(url: str) -> str:
    """A target as recorded: scheme, host and path; a query may carry a token."""
    return str(httpx.URL(url).copy_with(query=None, fragment=None))


@dataclass(frozen=True)
class Answer:
    """What one signed POST came to."""

    outcome: str  # "delivered" | "temporary_failure" | "permanent_failure"
    http_status: int | None = None
    error: str | None = None
    #: The receiver's Retry-After header, as given (None when absent).
    retry_after: str | None = None


def webhook_session(
    *, limit: int, guard: OutboundPolicy | None = None, proxy_for: str | None = None
) -> aiohttp.ClientSession:
    """The client signed POSTs go through (aiohttp: a few times less CPU per request than
    httpx), with at most `limit` connections and TLS verified against `SSL_CERT_FILE` or
    `SSL_CERT_DIR` when the environment names one, else certifi's roots (as httpx did).

    With `guard`, every request and every connection passes the SSRF guard (shared/outbound.py)
    and no proxy is used. Without it (the operator's own address, `proxy_for`), the proxy the
    environment names for that address is looked up once, here (`environment_proxy`): aiohttp's
    `trust_env` would read the environment and ~/.netrc again for every request (about 0.5 ms
    of CPU each). Redirects are never followed (`post_signed`); answers are read raw."""
    connector = aiohttp.TCPConnector(
        limit=limit, ssl=_tls(), resolver=GuardedResolver(guard) if guard is not None else None
    )
    if guard is not None:
        return aiohttp.ClientSession(
            connector=connector, auto_decompress=False, middlewares=(guard.middleware,)
        )
    proxy = environment_proxy(proxy_for) if proxy_for else None
    return aiohttp.ClientSession(connector=connector, auto_decompress=False, proxy=proxy)


def _tls() -> ssl.SSLContext:
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    if capath and os.path.isdir(capath):
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


def environment_proxy(url: str) -> URL | None:
    """The proxy the environment names for `url` (HTTPS_PROXY or HTTP_PROXY by its scheme, else
    ALL_PROXY; none when NO_PROXY covers its host), credentials and all (aiohttp sends them as
    Proxy-Authorization). ValueError for a proxy the client cannot speak to (only http://
    proxies), rather than going round it; the message names no part of the proxy's URL."""
    target = URL(url)
    if not target.host or urllib.request.proxy_bypass(target.host):
        return None
    proxies = urllib.request.getproxies()
    named = proxies.get(target.scheme) or proxies.get("all")
    if not named:
        return None
    proxy = URL(named)
    if proxy.scheme != "http":
        raise ValueError(
            f"the proxy the environment names for {target.scheme} is not an http:// proxy;"
            " pages can go only through an http:// proxy"
        )
    return proxy


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    secrets: Sequence[str],
    event_id: object,
    deadline: float,
    content_type: str = "application/json",
    read_limit: int = READ_LIMIT,
) -> Answer:
    """POST `body` signed, all of it (connect, TLS, sending, the answer) within `deadline`
    seconds, and read at most `read_limit` bytes of the answer; a redirect is an answer like any
    other 3xx, never followed.

    The status decides the outcome; the body is only drained a little, as it comes, so that a
    receiver writing a byte every few seconds or an endless body holds neither the slot nor
    memory, and the connection is closed when more is left (aiohttp reuses it only when the
    answer was read to its end).
    """
    headers = signed_headers(secrets, body, event_id=event_id, content_type=content_type)
    status: int | None = None
    retry_after: str | None = None
    try:
        async with asyncio.timeout(deadline):
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status, retry_after = response.status, response.headers.get("Retry-After")
                read = 0
                async for chunk in response.content.iter_any():
                    read += len(chunk)
                    if read >= read_limit:
                        break
    except TimeoutError:
        if status is None:
            return Answer("temporary_failure", error=f"no answer within {deadline:g} s")
    except UnsafeUrl as exc:
        return Answer("temporary_failure", error=f"refused: {exc}")
    except (aiohttp.ClientError, OSError, ValueError) as exc:  # ValueError: a host like "a..b"
        if status is None:
            return Answer("temporary_failure", error=type(exc).__name__)
    # The status came within the deadline: what followed (the body) changes nothing.
    assert status is not None
    outcome = classify(status)
    error = None if outcome == "delivered" else f"HTTP {status}"
    return Answer(outcome, http_status=status, error=error, retry_after=retry_after)
