"""The console's settings. It shares the services' logging, TLS and OIDC settings; it never
uses their database or Kafka settings (it has neither)."""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    host: str = Field("127.0.0.1", validation_alias="CONSOLE_HOST")
    port: int = Field(8004, validation_alias="CONSOLE_PORT")
    #: The services' HTTP APIs: the console's only way to data.
    intake_url: str = Field("http://127.0.0.1:8001", validation_alias="INTAKE_URL")
    risk_url: str = Field("http://127.0.0.1:8002", validation_alias="RISK_URL")
    notify_url: str = Field("http://127.0.0.1:8003", validation_alias="NOTIFY_URL")
    #: Fernet keys (urlsafe base64 of 32 bytes), comma-separated, the first current: they seal the
    #: session cookie. `make run` keeps one in .local/run/secrets/console-session-key. Unset, a
    #: key is made at start, and a restart signs everyone out.
    session_keys: str = Field("", validation_alias="CONSOLE_SESSION_KEYS", repr=False)
    #: Automatic logoff (HIPAA §164.312(a)(2)(iii)) after this long without a page view.
    idle_minutes: float = Field(15.0, gt=0, validation_alias="CONSOLE_IDLE_MINUTES")
    #: A session ends this long after sign-in, however active.
    max_session_hours: float = Field(12.0, gt=0, validation_alias="CONSOLE_MAX_SESSION_HOURS")
    #: Seconds between two looks at the open alerts by a clinician's open page.
    live_seconds: float = Field(5.0, gt=0, validation_alias="CONSOLE_LIVE_SECONDS")
    #: Mark the cookie Secure. Default: when the console itself serves TLS; set it to true behind
    #: a TLS-terminating proxy.
    secure_cookie: bool | None = Field(None, validation_alias="CONSOLE_SECURE_COOKIE")
    #: Where people reach the console (the identity provider sends them back here).
    public_url: str = Field("http://127.0.0.1:8004", validation_alias="CONSOLE_PUBLIC_URL")
    #: The console's client at the identity provider (authorization code with PKCE).
    oidc_client_id: str = Field("triage-console", validation_alias="OIDC_CLIENT_ID")
    oidc_client_secret: str | None = Field(None, validation_alias="OIDC_CLIENT_SECRET", repr=False)
    oidc_scope: str = Field("openid profile", validation_alias="OIDC_SCOPE")

    @property
    def cookie_secure(self) -> bool:
        if self.secure_cookie is not None:
            return self.secure_cookie
        return bool(self.tls_cert_file) or self.public_url.startswith("https://")
