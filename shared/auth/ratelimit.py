"""Per-credential limits on writes, and slowing down whoever keeps presenting bad credentials.

The `limits` library does the counting (sliding window counters), in memory by default; with
several replicas, `RATE_LIMIT_STORAGE_URI=redis://…` makes the counts shared.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

from limits import RateLimitItem, parse, storage
from limits.strategies import SlidingWindowCounterRateLimiter

from shared.auth.principal import Principal
from shared.auth.roles import Role
from shared.errors import TooManyRequests


class RateLimits:
    def __init__(
        self,
        *,
        writes: Mapping[str, str | None],
        failed_auth: str,
        storage_uri: str = "memory://",
        recorded_refusals: str = "300/minute",
    ) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage.storage_from_string(storage_uri))
        #: A role without an entry (admin, by default) is not limited.
        self._writes: dict[Role, RateLimitItem] = {
            Role(role): parse(limit) for role, limit in writes.items() if limit
        }
        self._failed_auth = parse(failed_auth)
        #: Refusals of requests without a valid credential (or with a bad signed link) leave an
        #: entry each, up to this many per address: past it they are still refused, but a flood
        #: cannot flood the trail (AUDIT_REFUSAL_LIMIT).
        self._recorded_refusals = parse(recorded_refusals)

    def write(self, principal: Principal) -> None:
        """Count one write by this credential; 429 past its role's limit."""
        item = self._writes.get(principal.role)
        if item is not None and not self._limiter.hit(item, "write", principal.credential_id):
            raise TooManyRequests(
                f"more than {item} writes by this credential; slow down",
                retry_after=self._retry_after(item, "write", principal.credential_id),
            )

    def failed_auth(self, client: str) -> None:
        """Count a refused credential from `client`; 429 instead of 401 past the limit, so
        guessing keys from one address is slowed while valid keys there still work."""
        if not self._limiter.hit(self._failed_auth, "auth", client):
            raise TooManyRequests(
                "too many requests with an invalid credential from this address",
                retry_after=self._retry_after(self._failed_auth, "auth", client),
            )

    def refusal_recorded(self, client: str) -> bool:
        """Whether a refusal from `client` still gets its own audit entry."""
        return self._limiter.hit(self._recorded_refusals, "refusal", client)

    def _retry_after(self, item: RateLimitItem, *keys: str) -> int:
        reset = self._limiter.get_window_stats(item, *keys).reset_time
        return max(1, math.ceil(reset - time.time()))
