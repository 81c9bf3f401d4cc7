"""Outgoing webhooks: the contract's signature, the retry schedule, and how an answer is read.

Alert pages (notify) and EHR rest-hooks (intake) are both signed POSTs retried with backoff; the
receiving side verifies them the same way, so the scheme lives here once.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Sequence

import httpx


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
