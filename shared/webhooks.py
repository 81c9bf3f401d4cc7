"""Outgoing webhooks: the contract's signature, the retry schedule, and how an answer is read.

Alert pages and reminders (notify) and EHR rest-hooks (intake) are all signed POSTs retried with
backoff; the receiving side verifies them the same way, so the scheme lives here once, and so
does the one way they are sent (`post_signed`): within a total deadline, reading at most a few KB
of the answer, so that no receiver, however slow or endless its answer, holds a sender's slot or
its memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import certifi
import httpx
from aiohttp.helpers import get_env_proxy_for_url
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
    httpx), with at most `limit` connections and TLS verified against certifi's roots.

    With `guard`, every request and every connection passes the SSRF guard (shared/outbound.py)
    and no proxy is used. Without it (the operator's own address, `proxy_for`), the proxy the
    environment names for that address (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) is looked up once,
    here: aiohttp's `trust_env` would read the environment and ~/.netrc again for every request
    (about 0.5 ms of CPU each). Redirects are never followed (`post_signed`); answers are read
    raw."""
    tls = ssl.create_default_context(cafile=certifi.where())
    if guard is not None:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, ssl=tls, resolver=GuardedResolver(guard)),
            auto_decompress=False,
            middlewares=(guard.middleware,),
        )
    proxy: URL | None = None
    proxy_auth: aiohttp.BasicAuth | None = None
    # LookupError: none named, or NO_PROXY covers the address
    with contextlib.suppress(LookupError):
        if proxy_for is not None:
            proxy, proxy_auth = get_env_proxy_for_url(URL(proxy_for))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=tls),
        auto_decompress=False,
        proxy=proxy,
        proxy_auth=proxy_auth,
    )


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
    except (aiohttp.ClientError, OSError) as exc:
        if status is None:
            return Answer("temporary_failure", error=type(exc).__name__)
    # The status came within the deadline: what followed (the body) changes nothing.
    assert status is not None
    outcome = classify(status)
    error = None if outcome == "delivered" else f"HTTP {status}"
    return Answer(outcome, http_status=status, error=error, retry_after=retry_after)
