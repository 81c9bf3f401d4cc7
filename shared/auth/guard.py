"""The one gate every route passes: who is calling (401), may their role do this (403), are
they within their limits (429).

Each service keeps a table, beside its routes, of `(method, path) -> Access`; its routers are
built with `guarded(table)` as their route class. The check runs before FastAPI reads the body
or resolves any dependency, so a caller without a credential learns nothing about a route's
shape, and a route missing from the table is closed to every role (deny by default).
`require_every_route_guarded()` refuses to build an app with a route that bypasses the gate.
"""

from __future__ import annotations

import collections
import logging
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from shared import audit
from shared.auth.directory import CredentialDirectory, CredentialsUnavailable
from shared.auth.oidc import InvalidToken, OidcVerifier
from shared.auth.principal import Principal
from shared.auth.ratelimit import RateLimits
from shared.auth.roles import Permission
from shared.errors import ErrorBody, Forbidden, ServiceUnavailable, Unauthenticated
from shared.logging import valid_correlation

log = logging.getLogger(__name__)

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Reads that leave a trace: a person's record, its risk assessments (and the trail itself).
#: Every write does.
_AUDITED_READS = frozenset(
    {
        Permission.CASES_READ,
        Permission.ASSESSMENTS_READ,
        Permission.AUDIT_READ,
        Permission.ACCESS_LOG_READ,
        Permission.FOLLOW_UPS,
    }
)
#: Answers that are refusals, and the outcome their entry records.
_REFUSED = {401: "denied", 403: "denied", 404: "not_found"}
#: The resource an entry names, from the route's first path parameter.
_RESOURCE_TYPES = {
    "screening_id": "screening",
    "plan_id": "safety-plan",
    "follow_up_id": "follow-up",
    "task_id": "follow-up-task",
    "alert_id": "alert",
    "clinician_id": "clinician",
    "schedule_id": "schedule",
    "policy_id": "policy",
    "subscription_id": "subscription",
    "key_id": "api-key",
}


def _resource_of(path: str) -> Callable[[Mapping[str, Any]], str]:
    """How a route names its resource: `<type>/<id>` from its first path parameter, else the
    collection (`screenings`, `api-keys`; a handler that creates one names it: `audit.about`)."""
    found = next(((n, k) for n, k in _RESOURCE_TYPES.items() if "{" + n + "}" in path), None)
    collection = path.removeprefix("/v1/").split("/", 1)[0] or "-"

    def resource(params: Mapping[str, Any]) -> str:
        if not found:
            return collection
        try:  # the gate runs before FastAPI validates the parameter: never store raw input
            ident = str(uuid.UUID(str(params.get(found[0]))))
        except ValueError:
            ident = "invalid-id"
        return f"{found[1]}/{ident}"

    return resource


SECURITY_SCHEME = "bearerAuth"


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call one operation. `permission=None`: anyone, without a credential."""

    permission: Permission | None
    #: A request carrying a `sig` query parameter skips the credential: the route itself
    #: verifies the signed link (the acknowledgement link in a page) and answers 403 if bad.
    signed_link: bool = False
    #: Webhooks of a provider (Twilio) take no credential at all: the route checks the
    #: provider's signature on every request and answers 403 if it is missing or bad.
    provider_signed: bool = False


PUBLIC = Access(None)
RouteTable = Mapping[tuple[str, str], Access]


def _declared(path: str, methods: set[str], *, guarded: bool, model: Any) -> dict[int | str, Any]:
    """The error answers a route can give whatever it does, for its OpenAPI: the gate's, a
    missing object's, and a body's that is not JSON or too large."""

    def error(description: str) -> dict[str, Any]:
        return (
            {"model": model, "description": description} if model else {"description": description}
        )

    out: dict[int | str, Any] = {}
    if guarded:
        out[401] = error("no credential, or one that is unknown, expired or revoked")
        out[403] = error("the caller's role may not do this")
        out[429] = error("too many writes by this credential, or bad credentials from here")
        out[503] = error("credentials cannot be checked, or the database is down, right now")
    if "{" in path:
        out[404] = error("no such object, or one outside the caller's scope")
    if methods & {"POST", "PUT", "PATCH"}:
        out[400] = error("the body is not valid JSON")
        out[413] = error("the body is larger than MAX_BODY_BYTES")
    return out


class Gate:
    """Builds the principal from a request's credential: the only place that reads it."""

    def __init__(
        self,
        *,
        directory: CredentialDirectory,
        limits: RateLimits,
        oidc: OidcVerifier | None = None,
    ) -> None:
        self.directory = directory
        self.limits = limits
        self.oidc = oidc
        #: Refused credentials by why (the metrics read it): unauthenticated, forbidden,
        #: unavailable (they could not be checked).
        self.refusals: collections.Counter[str] = collections.Counter()

    async def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if not header:
            raise Unauthenticated(
                "this operation needs a credential: Authorization: Bearer <API key or token>"
            )
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        principal = None
        if scheme.lower() == "bearer" and credential:
            try:
                principal = await self._principal(credential)
            except CredentialsUnavailable as exc:
                self.refusals["unavailable"] += 1
                raise ServiceUnavailable(
                    "credentials cannot be checked right now; retry shortly", retry_after=2
                ) from exc
        if principal is None:
            self.limits.failed_auth(request.client.host if request.client else "-")
            raise Unauthenticated("the credential is unknown, expired or revoked", invalid=True)
        return principal

    async def _principal(self, credential: str) -> Principal | None:
        if self.oidc is not None and credential.count(".") == 2:
            try:
                return await self.oidc.principal(credential)
            except InvalidToken as exc:
                log.info("refused an access token: %s", exc)
                return None
        return await self.directory.principal_or_wait(credential)


def guarded(table: RouteTable, *, error_model: Any = ErrorBody) -> type[APIRoute]:
    """A route class that checks `table` before anything else runs for the request.

    `error_model`: the shape of its error bodies in the OpenAPI (None: described only)."""

    class GuardedRoute(APIRoute):
        def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
            methods = {m.upper() for m in kwargs.get("methods") or ("GET",)}
            self.access = {m: table.get((m, path)) for m in methods}
            closed = any(
                a is None or (a.permission is not None and not a.provider_signed)
                for a in self.access.values()
            )
            declared = _declared(path, methods, guarded=closed, model=error_model)
            kwargs["responses"] = {**declared, **(kwargs.get("responses") or {})}
            if closed:
                extra = kwargs.get("openapi_extra") or {}
                kwargs["openapi_extra"] = {"security": [{SECURITY_SCHEME: []}], **extra}
            super().__init__(path, endpoint, **kwargs)

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            access_by_method = self.access
            action = getattr(self.endpoint, "__name__", "call")
            resource = _resource_of(self.path)

            async def guarded_handler(request: Request) -> Response:
                access = access_by_method.get(request.method)
                if access is not None and access.permission is None:
                    return await handler(request)
                runtime = request.app.state.runtime
                gate: Gate = runtime.gate
                # Kept for good in the entry: a plain, short id, or a fresh one.
                correlation = valid_correlation(request.headers.get("x-correlation-id"))
                entry = audit.new_entry(
                    service=runtime.schema,
                    actor="anonymous",
                    role="-",
                    credential_id="-",
                    action=action,
                    resource=resource(request.path_params),
                    outcome="success",
                    client=request.client.host if request.client else "-",
                    correlation_id=correlation,
                )
                signed = access is not None and (
                    access.provider_signed or (access.signed_link and "sig" in request.query_params)
                )
                if signed:
                    # The route checks the signature; a bad one counts as a bad credential
                    # (`RateLimits.failed_auth`: 429 past AUTH_FAILURE_LIMIT).
                    entry["actor"] = "provider" if access.provider_signed else "signed-link"  # type: ignore[union-attr]
                else:
                    try:
                        principal = await gate.authenticate(request)
                        entry.update(
                            actor=principal.name,
                            role=principal.role.value,
                            credential_id=principal.credential_id,
                        )
                        if access is None or not principal.may(access.permission):  # type: ignore[arg-type]
                            raise Forbidden(f"the {principal.role} role may not do this")
                    except (Unauthenticated, Forbidden) as refused:
                        gate.refusals[
                            "forbidden" if isinstance(refused, Forbidden) else "unauthenticated"
                        ] += 1
                        entry["outcome"] = "denied"
                        if gate.limits.refusal_recorded(entry["client"]):
                            await audit.record_alone(runtime.audit_sessions, runtime.outbox, entry)
                        raise refused
                    if request.method in _WRITES:
                        gate.limits.write(principal)
                    request.state.principal = principal
                if request.method not in _WRITES and access.permission not in _AUDITED_READS:  # type: ignore[union-attr,operator]
                    return await handler(request)
                with audit.scope(audit.AuditScope(runtime.outbox, entry)) as scope:
                    try:
                        response = await handler(request)
                    except Exception as exc:
                        # Not there or outside the caller's scope (404), or a bad signed link
                        # (403): refusals worth a trace.
                        status = getattr(exc, "status_code", 0)
                        if (
                            status in _REFUSED
                            and not scope.written
                            and (not signed or gate.limits.refusal_recorded(entry["client"]))
                        ):
                            entry["outcome"] = _REFUSED[status]
                            await audit.record_alone(
                                runtime.audit_sessions,
                                runtime.outbox,
                                entry,
                                on=getattr(request.state, "read_session", None),
                            )
                        raise
                # Durable before the answer: a read (or a change that committed no transaction
                # of its own) is written now, and a failure to write is a 503, not an answer.
                if response.status_code in _REFUSED:
                    entry["outcome"] = _REFUSED[response.status_code]
                    if signed and not gate.limits.refusal_recorded(entry["client"]):
                        return response
                if (response.status_code < 400 or response.status_code in _REFUSED) and not (
                    scope.written
                ):
                    await audit.record_alone(
                        runtime.audit_sessions,
                        runtime.outbox,
                        entry,
                        on=getattr(request.state, "read_session", None),
                    )
                return response

            return guarded_handler

    return GuardedRoute


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, including those of included routers (FastAPI keeps them nested)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def require_every_route_guarded(app: FastAPI) -> FastAPI:
    """Refuse an app with a route outside the gate, and name the scheme in its OpenAPI."""
    for route in api_routes(app.routes):
        if not hasattr(route, "access"):
            raise RuntimeError(
                f"route {route.path} is not guarded: build its router with guarded()"
            )
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})[
                SECURITY_SCHEME
            ] = {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key issued by intake, or the identity provider's "
                "access token (JWT) when OIDC is configured",
            }
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _principal(request: Request) -> Principal:
    return request.state.principal


#: The caller of a guarded route, in a route's signature.
CurrentPrincipal = Annotated[Principal, Depends(_principal)]
