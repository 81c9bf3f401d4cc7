"""The settings every service shares; each service subclasses it with its own fields.

Settings are read from the environment when a service's lifespan builds them, never at import.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Where `make run` puts the embedded PostgreSQL; deploy/ passes the real URL in DATABASE_URL.
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/triage"


class ServiceSettings(BaseSettings):
    """Connection settings common to intake, risk and notify."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
    #: PostgreSQL connections each process keeps (no more are opened: see shared/db.py).
    db_pool_size: int = Field(20, validation_alias="DB_POOL_SIZE")
    log_level: str = Field("INFO", validation_alias="LOG_LEVEL")
    #: Seconds between safety sweeps of the outbox, in case a NOTIFY wake-up was missed.
    outbox_sweep_seconds: float = Field(5.0, validation_alias="OUTBOX_SWEEP_SECONDS")
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = Field(64 * 1024, validation_alias="MAX_BODY_BYTES")
