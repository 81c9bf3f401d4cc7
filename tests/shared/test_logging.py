"""Every log line names its service and level, and the correlation id of what is handled; a
client's correlation id that could carry typed text or forge a line is not logged."""

from __future__ import annotations

import json
import logging
import uuid

from shared.logging import (
    CORRELATION,
    JsonFormatter,
    TextFormatter,
    safe_correlation,
    valid_correlation,
)


def _record(msg: str = "relay published %d", *args: object) -> logging.LogRecord:
    return logging.LogRecord("shared.outbox", logging.WARNING, __file__, 1, msg, args or (3,), None)


def test_json_lines_carry_service_level_and_correlation_id() -> None:
    token = CORRELATION.set(safe_correlation("c0ffee-42"))
    try:
        line = json.loads(JsonFormatter("intake").format(_record()))
    finally:
        CORRELATION.reset(token)
    assert line["service"] == "intake" and line["level"] == "WARNING"
    assert line["correlation_id"] == "c0ffee-42" and line["msg"] == "relay published 3"
    assert "correlation_id" not in json.loads(JsonFormatter("intake").format(_record()))


def test_text_lines_are_readable() -> None:
    token = CORRELATION.set("abc")
    try:
        line = TextFormatter("risk").format(_record())
    finally:
        CORRELATION.reset(token)
    assert line.endswith("WARNING risk shared.outbox: relay published 3 [abc]")


def test_a_correlation_id_that_could_carry_text_is_not_logged() -> None:
    assert safe_correlation("Jane Doe called\nfake line") == "(not loggable)"
    assert safe_correlation("x" * 129) == "(not loggable)"
    assert safe_correlation("urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427") is not None


def test_a_correlation_id_is_kept_only_when_plain_and_short() -> None:
    """What the gate keeps in an audit entry: <= 128 of [A-Za-z0-9._:-], else a fresh id."""
    for kept in ("c0ffee-42", "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427", "x" * 128):
        assert valid_correlation(kept) == kept
    for odd in (None, "", "x" * 129, "Jane Doe", "a/b", "a@b", "id\nforged"):
        fresh = valid_correlation(odd)
        assert fresh != odd and str(uuid.UUID(fresh)) == fresh


async def test_a_request_without_a_correlation_id_does_not_inherit_the_last_one() -> None:
    """Requests of one keep-alive connection run in one task, one after the other."""
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from shared.metrics import HttpMetrics, ServiceMetrics

    async def seen(request: object) -> PlainTextResponse:
        return PlainTextResponse(str(CORRELATION.get()))

    app = HttpMetrics(Starlette(routes=[Route("/", seen)]), metrics=ServiceMetrics())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        first = await client.get("/", headers={"X-Correlation-Id": "call-7"})
        second = await client.get("/")
    assert (first.text, second.text) == ("call-7", "None")
