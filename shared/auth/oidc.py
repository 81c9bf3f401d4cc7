"""Access tokens from the clinic's identity provider (Keycloak, Entra ID, Okta), when
`OIDC_ISSUER` is set.

The signing keys come from the issuer's JWKS, found through its discovery document, and are
cached; a token signed with an unknown `kid` refetches them, at most once per
`refresh_seconds`, so a flood of forged tokens cannot turn into a flood of requests to the
provider. PyJWT does the JOSE work: only RS256 and ES256 are accepted (`alg: none` and every
HS* are refused, so a public key can never be used as an HMAC secret), and `iss`, `aud`, `exp`
and `nbf` are checked with `leeway` seconds of clock skew.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
import jwt

from shared.auth.principal import Principal
from shared.auth.roles import Role

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
#: The most privileged role wins when a token carries several.
_ROLE_ORDER = (Role.ADMIN, Role.SUPERVISOR, Role.CLINICIAN, Role.EHR, Role.HOTLINE)


class InvalidToken(Exception):
    """The token is not one this service accepts; the message says why, never the token."""


def claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path: `roles`, or Keycloak's `realm_access.roles`."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


class OidcVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        roles_claim: str = "roles",
        systems_claim: str = "identifier_systems",
        leeway: float = 60,
        refresh_seconds: float = 30,
        http: httpx.AsyncClient,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.roles_claim = roles_claim
        self.systems_claim = systems_claim
        self.leeway = leeway
        self.refresh_seconds = refresh_seconds
        self._http = http
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def principal(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("not a JWT") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"signing algorithm {alg!r} is not accepted")
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            # TypeError / ValueError: a key of another type than the header's alg names
            raise InvalidToken(type(exc).__name__) from exc
        return self._principal(claims)

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        granted = claim(claims, self.roles_claim)
        names = {granted} if isinstance(granted, str) else set(granted or ())
        role = next((r for r in _ROLE_ORDER if r.value in names), None)
        if role is None:
            raise InvalidToken(f"the token's {self.roles_claim} names no role of this system")
        systems = claim(claims, self.systems_claim)
        systems = (systems,) if isinstance(systems, str) else tuple(systems or ())
        if role == Role.EHR and not systems:
            raise InvalidToken(f"an ehr token needs its identifier systems ({self.systems_claim})")
        subject = str(claims["sub"])
        return Principal(f"oidc:{subject}", subject, role, systems if role == Role.EHR else ())

    async def _key(self, kid: str | None) -> Any:
        async with self._lock:
            key = self._find(kid)
            stale = self._fetched_at is None or (
                time.monotonic() - self._fetched_at >= self.refresh_seconds
            )
            if key is None and stale:
                await self._refresh()
                key = self._find(kid)
        if key is None:
            raise InvalidToken("the token's signing key is not among the issuer's keys")
        return key.key

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            discovery = await self._http.get(f"{self.issuer}/.well-known/openid-configuration")
            discovery.raise_for_status()
            jwks_uri = discovery.json()["jwks_uri"]
            response = await self._http.get(jwks_uri)
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json()).keys
        except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError) as exc:
            log.warning("could not fetch the issuer's signing keys: %s", type(exc).__name__)
            return
        self._keys = {
            k.key_id or f"#{i}": k for i, k in enumerate(keys) if k.public_key_use in (None, "sig")
        }
        log.info("fetched %d signing keys from the issuer", len(self._keys))
