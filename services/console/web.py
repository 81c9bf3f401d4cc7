"""What every console page shares: who may open it (deny by default), the session, CSRF, the
security headers, and rendering.

Every route is in `pages.PAGES` with the permission it needs (the services' own permissions,
so a page is offered only to people whose credential the service behind it would accept). A
route missing from the table answers 403, and `require_every_page_listed` refuses to build an
app that has one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.console import i18n
from services.console.i18n import N_, _
from services.console.session import (
    COOKIE,
    SECURE_COOKIE,
    SessionSealer,
    SignedIn,
    same_token,
)
from services.console.settings import ConsoleSettings
from services.console.upstream import SignedOut, Upstream, UpstreamError
from shared.auth.guard import api_routes
from shared.auth.roles import ROLE_PERMISSIONS, Permission, Role

log = logging.getLogger(__name__)

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.add_extension("jinja2.ext.i18n")
# Read the answer's language per call (a context variable set by `i18n.Localize`).
TEMPLATES.env.install_gettext_callables(  # type: ignore[attr-defined]
    i18n.gettext, i18n.ngettext, newstyle=True
)
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Page:
    """Who may open a page: the permission it needs; `public` pages need no session."""

    permission: Permission | None = None
    public: bool = False
    #: Opening it counts as activity (the idle logoff starts again); a live refresh does not.
    touch: bool = True


PUBLIC = Page(public=True)
SIGNED_IN = Page()


def may(role: str, permission: Permission) -> bool:
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


class Console:
    """The app's shared parts, on `app.state.console`."""

    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.sealer = SessionSealer(
            settings.session_keys,
            idle_seconds=settings.idle_minutes * 60,
            max_seconds=settings.max_session_hours * 3600,
        )
        self.upstream = Upstream(
            {
                "intake": settings.intake_url,
                "risk": settings.risk_url,
                "notify": settings.notify_url,
            }
        )
        self.cookie = SECURE_COOKIE if settings.cookie_secure else COOKIE

    def set_session(self, response: Response, session: SignedIn) -> None:
        response.set_cookie(
            self.cookie,
            self.sealer.seal(session),
            max_age=int(self.settings.max_session_hours * 3600),
            path="/",
            secure=self.settings.cookie_secure,
            httponly=True,
            samesite="strict",
        )

    def set_signin_cookie(
        self,
        response: Response,
        name: str,
        value: dict[str, str],
        *,
        max_age: int,
        samesite: Literal["strict", "lax"],
    ) -> None:
        """A short-lived cookie of a sign-in under way (its form's CSRF token, an OIDC state
        and PKCE verifier), sealed like the session and sent to /login only."""
        response.set_cookie(
            name,
            self.sealer.seal_value(value),
            max_age=max_age,
            path="/login",
            secure=self.settings.cookie_secure,
            httponly=True,
            samesite=samesite,
        )

    def end_session(self, response: Response) -> None:
        response.delete_cookie(
            self.cookie,
            path="/",
            secure=self.settings.cookie_secure,
            httponly=True,
            samesite="strict",
        )


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def user_of(request: Request) -> SignedIn:
    user: SignedIn = request.state.user
    return user


async def api(request: Request, service: str, path: str, **kw: Any) -> Any:
    """GET from a service as the signed-in person."""
    return await console_of(request).upstream.get(
        service, path, credential=user_of(request).credential, **kw
    )


async def api_send(request: Request, method: str, service: str, path: str, **kw: Any) -> Any:
    return await console_of(request).upstream.send(
        service, method, path, credential=user_of(request).credential, **kw
    )


def to_login(request: Request) -> Response:
    """To sign-in, and back here afterwards (a path only: no PHI travels in URLs)."""
    if request.headers.get("hx-request"):
        # An htmx refresh: the whole page goes (not a fragment swapped into it), and comes
        # back to the page it refreshed.
        current = urlsplit(request.headers.get("hx-current-url", ""))
        same = current.netloc in ("", request.url.netloc)
        back = current.path if same and current.path.startswith("/") else "/"
        return Response(
            status_code=200, headers={"HX-Redirect": "/login?next=" + quote(back, safe="/")}
        )
    target = "/login?next=" + quote(request.url.path, safe="/")
    return RedirectResponse(target, status_code=303)


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    user: SignedIn | None = getattr(request.state, "user", None)
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "csrf": user.csrf if user else context.pop("login_csrf", ""),
            "can": (lambda p: may(user.role, Permission(p))) if user else (lambda p: False),
            "path": request.url.path,
            "lang": i18n.language(),
            "languages": i18n.LANGUAGES,
            # Where the language switcher comes back to: this page, when it can be opened again.
            "here": _here(request),
            **context,
        },
        status_code=status_code,
    )


def _here(request: Request) -> str:
    if request.method != "GET" or request.headers.get("hx-request"):
        return "/"
    query = request.url.query
    return request.url.path + ("?" + query if query else "")


def page_route(table: dict[tuple[str, str], Page]) -> type[APIRoute]:
    """A route class that checks the session, the permission and CSRF before the handler."""

    class PageRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            pages = {(m, self.path): table.get((m, self.path)) for m in self.methods or ()}

            async def guarded(request: Request) -> Response:
                page = pages.get((request.method, self.path))
                if page is None:  # not in the table: closed
                    return render(
                        request,
                        "error.html",
                        403,
                        title=_("Closed"),
                        message=_("This page is not open to anyone."),
                    )
                if page.public:
                    return await handler(request)
                console = console_of(request)
                user = console.sealer.open(request.cookies.get(console.cookie))
                if user is None:
                    response = to_login(request)
                    console.end_session(response)
                    return response
                request.state.user = user
                if page.permission is not None and not may(user.role, page.permission):
                    return render(
                        request,
                        "error.html",
                        403,
                        title=_("Not for your role"),
                        message=_("Your role may not open this page."),
                    )
                if request.method != "GET" and not await _csrf_ok(request, user):
                    return render(
                        request,
                        "error.html",
                        403,
                        title=_("Form expired"),
                        message=_(
                            "This form was not sent from this session's page. "
                            "Go back, reload, and send it again."
                        ),
                    )
                try:
                    response = await handler(request)
                except SignedOut:
                    response = to_login(request)
                    console.end_session(response)
                    return response
                except UpstreamError as exc:
                    if request.headers.get("hx-request"):
                        # A live refresh: say so in place of the list (htmx swaps only a 2xx;
                        # a stale list shown as live would mislead) and keep refreshing.
                        response = render(request, "_problem.html", message=exc.message)
                    else:
                        response = render(
                            request,
                            "error.html",
                            exc.status_code,
                            title=_(_TITLES.get(exc.status_code, N_("Problem"))),
                            message=exc.message,
                        )
                if page.touch:
                    console.set_session(response, user.touched(time.time()))
                return response

            return guarded

    return PageRoute


_TITLES = {
    403: N_("Not allowed"),
    404: N_("Not found"),
    409: N_("Changed meanwhile"),
    503: N_("Unavailable"),
}


async def _csrf_ok(request: Request, user: SignedIn) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    return same_token(token, user.csrf)


def require_every_page_listed(app: FastAPI, table: dict[tuple[str, str], Page]) -> FastAPI:
    """Refuse to build a console with a page missing from the table (deny by default)."""
    missing = [
        (method, route.path)
        for route in api_routes(app.routes)
        for method in route.methods or ()
        if (method, route.path) not in table
    ]
    if missing:
        raise RuntimeError(f"console pages missing from the page table: {missing}")
    return app


#: The Content-Security-Policy of every answer: scripts and styles from the console only (no
#: inline script or style, no eval), no framing, forms only to the console.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Adds the headers above to every answer; pages (PHI) are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


TEMPLATES.env.filters["ago"] = i18n.ago
TEMPLATES.env.filters["when"] = i18n.when
TEMPLATES.env.filters["day"] = i18n.day
TEMPLATES.env.filters["label"] = i18n.label
TEMPLATES.env.filters["step_title"] = i18n.step_title
TEMPLATES.env.filters["language_name"] = i18n.language_name
