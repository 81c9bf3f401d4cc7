"""Run one service's app under uvicorn (the `__main__` of each service)."""

from __future__ import annotations

import uvicorn

from shared.logging import configure_logging
from shared.settings import ServiceSettings


def serve(app_factory: str, settings: ServiceSettings, *, service: str) -> None:
    configure_logging(settings.log_level, service=service)
    uvicorn.run(
        app_factory,
        factory=True,
        host=getattr(settings, "host", "127.0.0.1"),
        port=getattr(settings, "port", 8000),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        # HTTPS when both are set (README, "Access"); plain HTTP on 127.0.0.1 otherwise.
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
    )
