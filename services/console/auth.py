"""Sign-in (an API key, or the clinic's identity provider with PKCE) and sign-out.

Who someone is comes from the services, never from the form: the console asks intake's
`GET /v1/me` with the credential given, and keeps the name and role it answers.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from services.console.i18n import DEFAULT, LANGUAGE_COOKIE, _, supported
from services.console.pages import PAGES
from services.console.session import LOGIN_COOKIE, OIDC_COOKIE, same_token
from services.console.upstream import SignedOut, UpstreamError
from services.console.web import console_of, page_route, render, user_of

router = APIRouter(route_class=page_route(PAGES))

#: How long a sign-in form, or a trip to the identity provider, may take.
LOGIN_SECONDS = 3600
OIDC_SECONDS = 600


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path of this console only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return parts.path if not parts.scheme and not parts.netloc else "/"


def _login_page(
    request: Request,
    *,
    next_path: str,
    problem: str | None = None,
    status_code: int = 200,
    notice: str | None = None,
) -> Response:
    console = console_of(request)
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        status_code,
        login_csrf=token,
        next_path=safe_next(next_path),
        problem=problem,
        notice=notice,
        oidc=bool(console.settings.oidc_issuer),
        title=_("Sign in"),
    )
    console.set_signin_cookie(
        response, LOGIN_COOKIE, {"csrf": token}, max_age=LOGIN_SECONDS, samesite="strict"
    )
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/", signed_out: bool = False) -> Response:
    return _login_page(
        request, next_path=next, notice=_("You are signed out.") if signed_out else None
    )


async def _who(request: Request, credential: str) -> dict[str, Any]:
    return await console_of(request).upstream.get("intake", "/v1/me", credential=credential)


def _signed_in(
    request: Request, *, credential: str, who: dict[str, Any], method: str, next_path: str
) -> Response:
    console = console_of(request)
    session = console.sealer.start(
        credential=credential,
        name=who["name"],
        role=who["role"],
        method=method,
        # The language chosen before signing in is kept (none chosen: the browser's).
        language=supported(request.cookies.get(LANGUAGE_COOKIE)) or "",
    )
    # A page, not a redirect: after a trip to the identity provider, a redirect would still
    # count as cross-site and the browser would hold back the new SameSite=Strict cookie.
    response = render(
        request, "signed_in.html", next_path=safe_next(next_path), title=_("Signed in")
    )
    console.set_session(response, session)
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/login")
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=4096)] = "",
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    console = console_of(request)
    form_token = console.sealer.open_value(request.cookies.get(LOGIN_COOKIE), ttl=LOGIN_SECONDS)
    if form_token is None or not same_token(csrf, form_token.get("csrf", "")):
        return _login_page(
            request,
            next_path=next,
            status_code=403,
            problem=_("This sign-in form has expired. Please enter your key again."),
        )
    key = key.strip()
    if not key:
        return _login_page(
            request, next_path=next, status_code=422, problem=_("Enter your API key.")
        )
    try:
        who = await _who(request, key)
    except SignedOut:
        return _login_page(
            request,
            next_path=next,
            status_code=401,
            problem=_("That key was not accepted: it is unknown, expired or revoked."),
        )
    except UpstreamError as exc:
        status = 429 if "too many" in exc.message.lower() else exc.status_code
        return _login_page(
            request,
            next_path=next,
            status_code=status,
            problem=_("Sign-in is not possible right now: %(reason)s") % {"reason": exc.message},
        )
    return _signed_in(request, credential=key, who=who, method="api-key", next_path=next)


@router.post("/logout")
async def logout(request: Request) -> Response:
    user_of(request)  # signed in: the route class checked the session and CSRF
    response = RedirectResponse("/login?signed_out=true", status_code=303)
    console_of(request).end_session(response)
    return response


def _back_to(target: str) -> str:
    """A page of this console to come back to, with its query (the instrument chosen)."""
    path, parts = safe_next(target), urlsplit(target)
    query = parts.query if path == parts.path else ""
    return path + ("?" + query if query else "")


@router.post("/language")
async def choose_language(
    request: Request,
    language: Annotated[str, Form(max_length=10)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The person's language: kept in their session when signed in (their choice wins over
    the browser's), and in a cookie of its own for the pages before sign-in."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return render(
            request,
            "error.html",
            403,
            title=_("Form expired"),
            message=_("This form was not sent from this console."),
        )
    console = console_of(request)
    chosen = supported(language) or DEFAULT
    response = RedirectResponse(_back_to(next), status_code=303)
    response.set_cookie(
        LANGUAGE_COOKIE,
        chosen,
        max_age=365 * 86400,
        path="/",
        secure=console.settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    user = console.sealer.open(request.cookies.get(console.cookie))
    if user is not None and same_token(csrf, user.csrf):
        console.set_session(response, replace(user, language=chosen))
    return response


# --- the clinic's identity provider: authorization code with PKCE (authlib) ----------------


async def _discovery(request: Request) -> dict[str, Any]:
    console = console_of(request)
    cached: dict[str, Any] | None = getattr(request.app.state, "oidc_discovery", None)
    if cached is None:
        issuer = str(console.settings.oidc_issuer).rstrip("/")
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"{issuer}/.well-known/openid-configuration")
            answer.raise_for_status()
            cached = answer.json()
        request.app.state.oidc_discovery = cached
    return cached


def _redirect_uri(request: Request) -> str:
    return console_of(request).settings.public_url.rstrip("/") + "/login/callback"


async def _exchange(request: Request, discovery: dict[str, Any], code: str, verifier: str) -> str:
    """The authorization code and the PKCE verifier for an access token (RFC 6749 4.1.3)."""
    settings = console_of(request).settings
    body = prepare_token_request(
        "authorization_code",
        code=code,
        redirect_uri=_redirect_uri(request),
        code_verifier=verifier,
        client_id=settings.oidc_client_id,
    )
    # A confidential client authenticates with HTTP Basic; a public one by PKCE alone.
    secret = settings.oidc_client_secret
    auth = httpx.BasicAuth(settings.oidc_client_id, secret) if secret else None
    async with httpx.AsyncClient(timeout=10, auth=auth) as client:
        answer = await client.post(
            discovery["token_endpoint"],
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


@router.get("/login/oidc")
async def oidc_start(request: Request, next: str = "/") -> Response:
    console = console_of(request)
    if not console.settings.oidc_issuer:
        return render(
            request,
            "error.html",
            404,
            title=_("Not found"),
            message=_("No identity provider is configured."),
        )
    try:
        discovery = await _discovery(request)
    except httpx.HTTPError:
        return _login_page(
            request,
            next_path=next,
            status_code=503,
            problem=_("The identity provider cannot be reached right now."),
        )
    verifier, state = generate_token(48), generate_token(32)
    url = prepare_grant_uri(
        discovery["authorization_endpoint"],
        console.settings.oidc_client_id,
        "code",
        redirect_uri=_redirect_uri(request),
        scope=console.settings.oidc_scope,
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
        nonce=generate_token(24),
    )
    response = RedirectResponse(url, status_code=303)
    console.set_signin_cookie(
        response,
        OIDC_COOKIE,
        {"state": state, "verifier": verifier, "next": safe_next(next)},
        max_age=OIDC_SECONDS,
        # Lax: the identity provider sends the person back with a cross-site navigation.
        samesite="lax",
    )
    return response


@router.get("/login/callback")
async def oidc_callback(
    request: Request, code: str = "", state: str = "", error: str = ""
) -> Response:
    console = console_of(request)
    pending = console.sealer.open_value(request.cookies.get(OIDC_COOKIE), ttl=OIDC_SECONDS)
    if pending is None or not same_token(state, pending.get("state", "")) or not code:
        problem = _("The identity provider's answer was not for this sign-in. Please try again.")
        if error:
            problem = _("The identity provider did not sign you in. Please try again.")
        return _login_page(request, next_path="/", status_code=400, problem=problem)
    try:
        discovery = await _discovery(request)
        access_token = await _exchange(request, discovery, code, pending["verifier"])
        who = await _who(request, access_token)
    except (httpx.HTTPError, KeyError, ValueError, UpstreamError) as exc:
        problem = _("Your sign-in was not accepted.")
        if not isinstance(exc, SignedOut):
            problem = _("Sign-in through the identity provider failed. Please try again.")
        return _login_page(
            request, next_path=pending.get("next", "/"), status_code=401, problem=problem
        )
    response = _signed_in(
        request, credential=access_token, who=who, method="oidc", next_path=pending.get("next", "/")
    )
    response.delete_cookie(OIDC_COOKIE, path="/login")
    return response
