"""One domain exception tree and one place that maps it to HTTP.

Error bodies name the problem, never the input: FastAPI's default validation errors echo what was
sent, and a screening's contact or notes are PHI. Every error body has the same shape:
`{"error": "<code>", "detail": "<sentence>", "problems": [{"field": "...", "problem": "..."}]}`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import is_transient

log = logging.getLogger(__name__)


class DomainError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        problems: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems = problems or []
        self.headers = headers


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Unprocessable(DomainError):
    status_code = 422
    code = "invalid"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class Unauthenticated(DomainError):
    """No credential, or one that is unknown, expired or revoked (never echoed back)."""

    status_code = 401
    code = "unauthenticated"

    def __init__(self, detail: str, *, invalid: bool = False) -> None:
        challenge = 'Bearer error="invalid_token"' if invalid else "Bearer"
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class TooManyRequests(DomainError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "unavailable"

    def __init__(self, detail: str, *, retry_after: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class Problem(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    """Every error answer of the API (documented in each route's OpenAPI)."""

    error: str
    detail: str
    problems: list[Problem] = []


def error_body(
    code: str, detail: str, problems: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {"error": code, "detail": detail, "problems": problems or []}


_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")


def validation_problems(errors: list[Any]) -> list[dict[str, str]]:
    """Pydantic errors as (field, problem) pairs, without the offending input.

    An unknown key is input too (`{"contact": {"Jane Doe": ...}}`): it is named only when it
    looks like a field name, so a typo such as `imminent_dnger` is still pointed out.
    """
    problems = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        msg = str(e.get("msg", "invalid"))
        if e.get("type") == "extra_forbidden" and loc and not _FIELD_NAME.match(loc[-1]):
            loc[-1] = "(unexpected field)"
        problems.append(
            {"field": ".".join(loc) or "body", "problem": msg.removeprefix("Value error, ")}
        )
    return problems


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.detail, exc.problems), exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(
                error_body("invalid_json", "the request body is not valid JSON"), 400
            )
        problems = validation_problems(errors)
        return JSONResponse(
            error_body("invalid", f"{len(problems)} problem(s) in the request", problems), 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(f"http_{exc.status_code}", str(exc.detail)),
            exc.status_code,
            headers=exc.headers,
        )

    async def _database(_: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):
            # The database restarted or is overloaded (the pool does not ping before each use):
            # nothing was committed, and the same request will work in a moment.
            log.warning("database unavailable (%s); answered 503", type(exc).__name__)
            return JSONResponse(
                error_body("unavailable", "the database is unavailable; retry the request"),
                503,
                headers={"Retry-After": "1"},
            )
        return await _unexpected(_, exc)

    # Registered by class (not under Exception, whose handler runs after the response machinery
    # has given up on the connection), so the 503 reaches the client.
    for database_error in (
        DBAPIError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        OSError,
    ):
        app.add_exception_handler(database_error, _database)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        return JSONResponse(error_body("internal", "internal error"), 500)
