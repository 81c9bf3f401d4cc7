"""The signed-in person's session: one encrypted cookie, and nothing kept on the server.

The cookie holds the person's own credential (their API key, or their identity provider's access
token), so it is sealed with Fernet (AES-CBC + HMAC-SHA256, `cryptography`): unreadable and
unforgeable without the console's key. It is HttpOnly, SameSite=Strict, Secure when the console
is reached over TLS, and `__Host-` prefixed then (no Domain, Path=/).

Automatic logoff: a session ends 15 minutes after the last page the person opened (the live
refresh of an open page does not count: a phone left on the alerts screen still logs off) and
12 hours after sign-in in any case.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, replace

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

COOKIE = "triage_console"
SECURE_COOKIE = "__Host-triage_console"
#: The sign-in form's own CSRF token, before there is a session.
LOGIN_COOKIE = "triage_console_login"
#: An identity provider sign-in under way: its state, nonce and PKCE verifier.
OIDC_COOKIE = "triage_console_oidc"


def new_session_key() -> str:
    return Fernet.generate_key().decode()


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who is signed in, with what, since when."""

    #: The bearer credential the services are called with: never shown, never logged.
    credential: str
    name: str
    role: str
    #: Epoch seconds: sign-in, and the last page the person opened.
    issued: float
    seen: float
    #: The token every form and htmx request of this session carries (CSRF).
    csrf: str
    #: "api-key" or "oidc".
    method: str = "api-key"
    #: The language the person chose ("" until they choose: then their browser's).
    language: str = ""

    def touched(self, now: float) -> SignedIn:
        return replace(self, seen=now)

    def __repr__(self) -> str:  # a session in a traceback must not show the credential
        return f"SignedIn(name={self.name!r}, role={self.role!r})"


class SessionSealer:
    """Seals and opens session cookies (and the short-lived sign-in cookies)."""

    def __init__(self, keys: str, *, idle_seconds: float, max_seconds: float) -> None:
        ring = [k.strip() for k in keys.split(",") if k.strip()] or [new_session_key()]
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in ring])
        except (ValueError, TypeError) as exc:
            # Never the key itself in the message.
            raise ValueError(
                "CONSOLE_SESSION_KEYS: each key must be 32 bytes in urlsafe base64 "
                "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())')"
            ) from exc
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds

    def start(
        self, *, credential: str, name: str, role: str, method: str, language: str = ""
    ) -> SignedIn:
        now = time.time()
        return SignedIn(
            credential, name, role, now, now, secrets.token_urlsafe(32), method, language
        )

    def seal(self, session: SignedIn) -> str:
        return self._fernet.encrypt(json.dumps(asdict(session)).encode()).decode()

    def open(self, cookie: str | None, *, now: float | None = None) -> SignedIn | None:
        """The session, or None when there is none, it was tampered with, or it has ended."""
        if not cookie:
            return None
        now = time.time() if now is None else now
        try:
            data = json.loads(self._fernet.decrypt(cookie.encode(), ttl=int(self.max_seconds) + 1))
            session = SignedIn(**data)
        except (InvalidToken, ValueError, TypeError):
            return None
        if now - session.seen > self.idle_seconds or now - session.issued > self.max_seconds:
            return None
        return session

    def seal_value(self, value: dict[str, str]) -> str:
        """A short-lived sign-in cookie (the login form's CSRF token, an OIDC state)."""
        return self._fernet.encrypt(json.dumps(value).encode()).decode()

    def open_value(self, cookie: str | None, *, ttl: int) -> dict[str, str] | None:
        if not cookie:
            return None
        try:
            value = json.loads(self._fernet.decrypt(cookie.encode(), ttl=ttl))
        except (InvalidToken, ValueError):
            return None
        return value if isinstance(value, dict) else None


def same_token(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a CSRF token (ASCII only: compare_digest refuses the rest)."""
    if not given or not given.isascii():
        return False
    return secrets.compare_digest(given.encode(), expected.encode())
