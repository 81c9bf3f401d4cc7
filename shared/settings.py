"""The settings every service shares; each service subclasses it with its own fields.

Settings are read from the environment when a service's lifespan builds them, never at import.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Where `make run` puts the embedded PostgreSQL; deploy/ passes the real URL in DATABASE_URL.
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/triage"


class ServiceSettings(BaseSettings):
    """Connection settings common to intake, risk and notify."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, url: str) -> str:
        """A plain `postgresql://` URL (CloudNativePG's `<cluster>-app` secret, `uri`) means
        the asyncpg driver."""
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+asyncpg://" + url.removeprefix(plain)
        return url

    #: The key ring that encrypts PHI and stored secrets at rest (shared/phi.py):
    #: `kid:base64key,...`, the first current. `make run` keeps one in .local/run/secrets/phi-keys.
    phi_keys: str = Field("", validation_alias="PHI_KEYS", repr=False)
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    #: PostgreSQL connections each process keeps (no more are opened: see shared/db.py).
    db_pool_size: int = Field(20, validation_alias="DB_POOL_SIZE")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    #: `json` (one object per line, for a log pipeline) or `text` (for a person: `make run`).
    log_format: Literal["json", "text"] = Field("json", validation_alias="LOG_FORMAT")
    #: Seconds between safety sweeps of the outbox, in case a NOTIFY wake-up was missed.
    outbox_sweep_seconds: float = Field(5.0, validation_alias="OUTBOX_SWEEP_SECONDS")
    # --- stopping (docs/operations.md, "Failure") ---
    #: On SIGTERM readiness answers 503 at once; requests are still served this long, so a load
    #: balancer that polls readiness stops sending before the listener closes.
    shutdown_delay_seconds: float = Field(0.0, ge=0, validation_alias="SHUTDOWN_DELAY_SECONDS")
    #: Then requests in flight get this long to finish before their connections are closed.
    shutdown_grace_seconds: float = Field(10.0, ge=0, validation_alias="SHUTDOWN_GRACE_SECONDS")
    # --- retention (shared/retention.py; docs/operations.md, "Failure") ---
    #: Event ids a consumer has applied: longer than any topic keeps a message.
    processed_events_days: float = Field(14.0, gt=0, validation_alias="PROCESSED_EVENTS_DAYS")
    #: Finished deliveries, pushes, reminders and their attempts.
    records_days: float = Field(90.0, gt=0, validation_alias="RECORDS_DAYS")
    #: Idempotency keys of screenings (a retry after this creates a new screening).
    idempotency_keys_days: float = Field(30.0, gt=0, validation_alias="IDEMPOTENCY_KEYS_DAYS")
    prune_interval_seconds: float = Field(300.0, gt=0, validation_alias="PRUNE_INTERVAL_SECONDS")
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = Field(64 * 1024, validation_alias="MAX_BODY_BYTES")

    # --- access (docs/security.md) ---
    #: `name:role:key[:system|system],...`: keys created at start when they do not exist yet.
    api_keys_bootstrap: str = Field("", validation_alias="API_KEYS_BOOTSTRAP", repr=False)
    #: Intake's public key for the access topic's records (base64 of the raw 32-byte Ed25519
    #: key): a record it did not sign is refused. Required: a service without it does not start.
    #: `make run` keeps the pair in .local/run/secrets/access-signing-key and access-verify-key.
    access_verify_key: str | None = Field(None, validation_alias="ACCESS_VERIFY_KEY")
    #: A replica that has not read the access topic to its end for this long refuses keys.
    credentials_max_staleness_seconds: float = Field(
        5.0, validation_alias="CREDENTIALS_MAX_STALENESS_SECONDS"
    )
    oidc_issuer: str | None = Field(None, validation_alias="OIDC_ISSUER")
    oidc_audience: str | None = Field(None, validation_alias="OIDC_AUDIENCE")
    oidc_roles_claim: str = Field("roles", validation_alias="OIDC_ROLES_CLAIM")
    oidc_systems_claim: str = Field("identifier_systems", validation_alias="OIDC_SYSTEMS_CLAIM")
    #: Least seconds between two fetches of the issuer's keys for an unknown `kid`.
    oidc_jwks_refresh_seconds: float = Field(30.0, validation_alias="OIDC_JWKS_REFRESH_SECONDS")
    #: Writes per credential, per role; a role left out (admin) is not limited.
    rate_limits: dict[str, str] = Field(
        {
            "hotline": "600/minute",
            "ehr": "20000/minute",
            "clinician": "1200/minute",
            "supervisor": "1200/minute",
        },
        validation_alias="RATE_LIMITS",
    )
    #: Refused credentials from one client address before further ones get 429.
    auth_failure_limit: str = Field("30/minute", validation_alias="AUTH_FAILURE_LIMIT")
    #: Refusals of callers without a valid credential (none, a bad one, a bad signed link) that
    #: leave an audit entry, per client address; past it they are refused unrecorded, so a flood
    #: cannot fill the permanent trail.
    audit_refusal_limit: str = Field("300/minute", validation_alias="AUDIT_REFUSAL_LIMIT")
    rate_limit_storage_uri: str = Field("memory://", validation_alias="RATE_LIMIT_STORAGE_URI")

    # --- transport ---
    tls_cert_file: str | None = Field(None, validation_alias="TLS_CERT_FILE")
    tls_key_file: str | None = Field(None, validation_alias="TLS_KEY_FILE")
    kafka_security_protocol: str = Field("PLAINTEXT", validation_alias="KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: str | None = Field(None, validation_alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(None, validation_alias="KAFKA_SASL_USERNAME")
    kafka_sasl_password: str | None = Field(
        None, validation_alias="KAFKA_SASL_PASSWORD", repr=False
    )
    kafka_ssl_cafile: str | None = Field(None, validation_alias="KAFKA_SSL_CAFILE")

    # --- outbound requests to URLs given through the API (shared/outbound.py) ---
    #: CIDRs that URLs given through the API may reach although private (local setups, tests).
    outbound_allowed_networks: str = Field("", validation_alias="OUTBOUND_ALLOWED_NETWORKS")
    outbound_allow_http: bool = Field(False, validation_alias="OUTBOUND_ALLOW_HTTP")

    def kafka_options(self) -> dict[str, object]:
        """The Kafka client's security settings, for every producer and consumer."""
        options: dict[str, object] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_sasl_mechanism:
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self.kafka_sasl_password,
            )
        return options

    @model_validator(mode="after")
    def _oidc_complete(self) -> ServiceSettings:
        if self.oidc_issuer and not self.oidc_audience:
            raise ValueError("OIDC_ISSUER is set: OIDC_AUDIENCE must name this API's audience")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE go together")
        return self
