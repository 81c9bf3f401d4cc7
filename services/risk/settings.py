from __future__ import annotations

from pathlib import Path

from pydantic import Field

from shared.settings import ServiceSettings


class RiskSettings(ServiceSettings):
    host: str = Field("127.0.0.1", validation_alias="RISK_HOST")
    port: int = Field(8002, validation_alias="RISK_PORT")
    #: A clinic's own rule-set file; the bundled current version when unset.
    ruleset_path: Path | None = Field(None, validation_alias="RISK_RULESET_PATH")
