"""Logs on stderr: one JSON object per line (`LOG_FORMAT=json`, the default in containers) or a
readable line (`LOG_FORMAT=text`). Every line names the service, the level and, inside a request
or a consumed event, its correlation id and (tracing on) its trace id. Log ids and codes; never a
name, phone number or note.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from shared import tracing

#: The correlation id of the request or event being handled (set by `CorrelationIds` and by
#: the consumer), on every line logged meanwhile.
CORRELATION: ContextVar[str | None] = ContextVar("correlation_id", default=None)
#: What a client-given correlation id may look like to be logged: anything else could carry
#: text a person typed, or forge log lines.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


#: What a client-given correlation id may be to be kept (in the audit trail, beside the request):
#: anything else is replaced by a fresh one at the gate.
_KEPT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def valid_correlation(value: str | None) -> str:
    """The client's correlation id when it is short and plain, else a fresh one: an id is kept
    for good (audit entries), so it must not carry typed text, nor any length a client likes."""
    if value is not None and _KEPT_ID.fullmatch(value):
        return value
    return str(uuid.uuid4())


def safe_correlation(value: str | None) -> str | None:
    if value is None:
        return None
    return value if _SAFE_ID.fullmatch(value) else "(not loggable)"


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        correlation = CORRELATION.get()
        if correlation is not None:
            entry["correlation_id"] = correlation
        trace_id = tracing.trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        line = f"{at} {record.levelname:<7} {self._service} {record.name}: {record.getMessage()}"
        correlation = CORRELATION.get()
        if correlation is not None:
            line += f" [{correlation}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO", *, service: str, fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter(service) if fmt == "text" else JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka is chatty at INFO about group joins; keep its warnings.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # httpx logs every request at INFO: one JSON line per page sent, on the alert path.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger(service).setLevel(level.upper())
