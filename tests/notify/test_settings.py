"""A bad fallback target refuses to start, rather than leaving every page failing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.notify.settings import NotifySettings


@pytest.mark.parametrize("url", ["http://[::1/hook", "ftp://pager.example/x", "pager.example/hook"])
def test_an_unusable_oncall_webhook_url_is_refused(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONCALL_WEBHOOK_URL", url)
    with pytest.raises(ValidationError, match="ONCALL_WEBHOOK_URL"):
        NotifySettings()


def test_a_good_oncall_webhook_url_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCALL_WEBHOOK_URL", "https://pager.example/hook?token=x")
    assert NotifySettings().oncall_webhook_url == "https://pager.example/hook?token=x"
