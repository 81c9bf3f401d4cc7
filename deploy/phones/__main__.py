"""`python -m deploy.phones`: the local Twilio stand-in on PHONES_HOST:PHONES_PORT."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from deploy.phones.app import create_app
from deploy.phones.settings import PhonesSettings
from shared.logging import configure_logging


def main() -> int:
    try:
        settings = PhonesSettings()
    except ValidationError as exc:
        names = ", ".join(f"PHONES_{str(e['loc'][0]).upper()}" for e in exc.errors())
        print(f"deploy.phones: missing or invalid settings: {names}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service="phones")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
