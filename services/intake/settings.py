from __future__ import annotations

from datetime import time

from pydantic import Field, field_validator

from services.intake.crisis_resources import codes
from shared.mail import SmtpSettings
from shared.settings import ServiceSettings
from shared.twilio import TwilioSettings


class IntakeSettings(ServiceSettings, TwilioSettings, SmtpSettings):
    host: str = Field("127.0.0.1", validation_alias="INTAKE_HOST")
    port: int = Field(8001, validation_alias="INTAKE_PORT")
    #: Minutes from opening to the due time of a safety plan, per risk level (configuration).
    safety_plan_due_minutes: dict[str, int] = Field(
        {"imminent": 60, "high": 240, "moderate": 1440},
        validation_alias="SAFETY_PLAN_DUE_MINUTES",
    )
    #: A TrueType font with the person's script, for the PDF copy of a safety plan. Unset: the
    #: first of a few well-known system paths (DejaVu Sans), else PDF's Latin-1 core font.
    safety_plan_pdf_font: str | None = Field(None, validation_alias="SAFETY_PLAN_PDF_FONT")
    #: EHR rest-hooks (services/intake/fhir/resthooks.py): attempts per RiskAssessment push, the
    #: backoff between them (doubling from the base, capped, with jitter), the deadline of one
    #: push and how many go out at once.
    fhir_push_max_attempts: int = Field(10, validation_alias="FHIR_PUSH_MAX_ATTEMPTS")
    fhir_push_retry_base_seconds: float = Field(
        0.5, validation_alias="FHIR_PUSH_RETRY_BASE_SECONDS"
    )
    fhir_push_retry_max_seconds: float = Field(
        300.0, validation_alias="FHIR_PUSH_RETRY_MAX_SECONDS"
    )
    #: How long one push may take, all of it (connect, TLS, sending, the answer); at most 24 s
    #: (four fifths of a push's 30 s lease).
    fhir_push_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias="FHIR_PUSH_TIMEOUT_SECONDS"
    )
    fhir_push_concurrency: int = Field(8, ge=1, validation_alias="FHIR_PUSH_CONCURRENCY")
    #: Pushes on the wire to one endpoint (host and port) at once, across replicas; unset, a
    #: quarter of FHIR_PUSH_CONCURRENCY (at least one): one slow EHR never holds every slot.
    fhir_push_per_endpoint: int | None = Field(
        None, ge=1, validation_alias="FHIR_PUSH_PER_ENDPOINT"
    )

    @property
    def fhir_push_endpoint_slots(self) -> int:
        """The slots one endpoint may hold (FHIR_PUSH_PER_ENDPOINT, or its default)."""
        if self.fhir_push_per_endpoint is not None:
            return self.fhir_push_per_endpoint
        return max(1, self.fhir_push_concurrency // 4)

    #: Ed25519 private key (32 bytes, base64) that signs the audit trail's checkpoints; kept
    #: outside the database (`make run` generates one in .local/run/secrets). Unset: no
    #: checkpoints, and a warning at start.
    audit_signing_key: str | None = Field(None, validation_alias="AUDIT_SIGNING_KEY", repr=False)
    audit_checkpoint_seconds: float = Field(60.0, validation_alias="AUDIT_CHECKPOINT_SECONDS")
    #: Audit entries older than this are retired (a prefix of the chain, up to a checkpoint).
    audit_retention_days: float = Field(6 * 365, validation_alias="AUDIT_RETENTION_DAYS")
    #: Follow-up after the call (services/intake/follow_ups): the first call is due this many
    #: hours after a flagged screening, and up to FOLLOW_UP_MAX_ATTEMPTS attempts are spread
    #: until FOLLOW_UP_WINDOW_HOURS after it (988's "Follow Up Matters": 24-48 hours, 3-5 tries).
    follow_up_first_hours: float = Field(24.0, gt=0, validation_alias="FOLLOW_UP_FIRST_HOURS")
    follow_up_max_attempts: int = Field(5, ge=1, le=20, validation_alias="FOLLOW_UP_MAX_ATTEMPTS")
    follow_up_window_hours: float = Field(48.0, gt=0, validation_alias="FOLLOW_UP_WINDOW_HOURS")
    #: Caring Contacts: when messages go (offsets from the day of consent: `<n>d`, `<n>w`,
    #: `<n>m`; checked at start), and the local hours they may go in (the person's own zone).
    caring_schedule: str = Field(
        "1d,1w,2w,3w,4w,2m,3m,4m,6m,8m,10m,12m", validation_alias="CARING_SCHEDULE"
    )
    caring_window_start: time = Field(time(9, 0), validation_alias="CARING_WINDOW_START")
    caring_window_end: time = Field(time(20, 0), validation_alias="CARING_WINDOW_END")

    #: The number Caring Contacts are sent from (the account's; its incoming-message webhook is
    #: intake's POST /v1/twilio/sms). Unset: TWILIO_FROM_NUMBER.
    caring_from_number: str | None = Field(None, validation_alias="CARING_FROM_NUMBER")
    #: The base URL the provider reaches intake at: status callbacks are sent there, and the
    #: signatures of its webhooks are checked over it (never over the request's Host header).
    #: Unset: http://INTAKE_HOST:INTAKE_PORT.
    intake_public_url: str | None = Field(None, validation_alias="INTAKE_PUBLIC_URL")
    #: Attempts per caring message while the provider cannot be reached (429, 5xx, no answer).
    caring_max_attempts: int = Field(8, ge=1, validation_alias="CARING_MAX_ATTEMPTS")
    caring_concurrency: int = Field(4, ge=1, validation_alias="CARING_CONCURRENCY")

    @property
    def public_url(self) -> str:
        return (self.intake_public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def caring_number(self) -> str | None:
        return self.caring_from_number or self.twilio_from_number

    #: ISO 3166-1 alpha-2: whose crisis lines and emergency numbers a person is shown when their
    #: own country is not known (services/intake/crisis_resources). A code ISO does not assign
    #: (`UK`) stops intake at start rather than print no numbers.
    default_country: str = Field("US", validation_alias="DEFAULT_COUNTRY")

    @field_validator("default_country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        return codes.country(value)

    #: Ed25519 private key (32 bytes, base64) that signs every record of the access topic;
    #: intake's alone (every service has the public half, ACCESS_VERIFY_KEY). Required.
    access_signing_key: str | None = Field(None, validation_alias="ACCESS_SIGNING_KEY", repr=False)
