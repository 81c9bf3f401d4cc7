"""Signing in to the console through the clinic's identity provider: authorization code with
PKCE (S256), in a real browser, against an intake that takes the provider's tokens."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import pytest
from playwright.async_api import Browser, expect

from deploy.localstack import free_port
from tests.console.conftest import NOWHERE
from tests.console.test_journeys import accessible
from tests.support.idp import AUDIENCE, IdentityProvider, running_idp
from tests.support.services import ServiceProcesses

OIDC = {"OIDC_AUDIENCE": AUDIENCE, "OIDC_ROLES_CLAIM": "realm_access.roles"}


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[IdentityProvider]:
    async with running_idp() as provider:
        provider.login_subject, provider.login_roles = "counsellor-ruiz", ("hotline",)
        yield provider


@pytest.fixture(scope="module")
def oidc_stack(
    services: ServiceProcesses, idp: IdentityProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcesses]:
    """An intake replica that takes the provider's tokens, and a console in front of it."""
    logs = tmp_path_factory.mktemp("oidc-console")
    intake = ServiceProcesses(
        env={**services.env, "OIDC_ISSUER": idp.issuer, **OIDC},
        ports={"intake": free_port()},
        log_dir=logs,
    )
    intake.start("intake")
    port = free_port()
    console = ServiceProcesses(
        env={
            **NOWHERE,
            **OIDC,
            "OIDC_ISSUER": idp.issuer,
            "OIDC_CLIENT_ID": "triage-console",
            "CONSOLE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "INTAKE_URL": intake.url("intake"),
            "RISK_URL": services.url("risk"),
            "NOTIFY_URL": services.url("notify"),
            "PATH": services.env["PATH"],
        },
        ports={"console": port},
        log_dir=logs,
    )
    try:
        console.start("console")
        yield console
    finally:
        console.stop()
        intake.stop()


async def test_signing_in_through_the_identity_provider_with_pkce(
    oidc_stack: ServiceProcesses, idp: IdentityProvider, browser: Browser
) -> None:
    base = oidc_stack.url("console")
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await accessible(page)
    async with page.expect_request(lambda r: "/openid-connect/auth" in r.url) as asked:
        await page.get_by_role("link", name="Sign in with your organisation").click()
    authorize = (await asked.value).url
    assert "code_challenge_method=S256" in authorize and "code_challenge=" in authorize
    assert "code_verifier" not in authorize
    # The provider sends the person back; the console exchanges the code with its verifier.
    await page.wait_for_url(f"{base}/")
    await expect(page.get_by_text("counsellor-ruiz · hotline")).to_be_visible()
    await expect(page.get_by_role("heading", name="Screenings", exact=True)).to_be_visible()
    assert idp.codes == {}, "the code was exchanged, once"
    await context.close()


async def test_an_answer_for_another_sign_in_is_refused(
    oidc_stack: ServiceProcesses, browser: Browser
) -> None:
    """A callback whose state is not this browser's sign-in (a forged or replayed link)."""
    base = oidc_stack.url("console")
    context = await browser.new_context()
    page = await context.new_page()
    answer = await page.goto(f"{base}/login/callback?code=stolen&state=forged")
    assert answer is not None and answer.status == 400
    await expect(page.get_by_role("alert")).to_contain_text("not for this sign-in")
    await page.goto(f"{base}/")
    await page.wait_for_url(re.compile(r"/login\?next=/$"))
    await context.close()
