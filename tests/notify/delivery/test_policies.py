"""Escalation plans, retries and signing as plain functions."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

from services.notify.delivery.channels import retry_after
from services.notify.delivery.service import retry_delay
from services.notify.delivery.signing import ack_key, ack_link, ack_link_valid
from services.notify.oncall.policies import Level, Plan, Step, fallback_plan, level_delay, next_step
from services.notify.settings import NotifySettings
from shared.webhooks import classify

TWO_LEVELS = Plan(levels=(Level(delay_seconds=60), Level()), repeats=1)


def test_steps_walk_the_levels_then_repeat_then_stop() -> None:
    steps = [Step(0, 0)]
    while (following := next_step(TWO_LEVELS, steps[-1])) is not None:
        steps.append(following)
    assert steps == [Step(0, 0), Step(1, 0), Step(0, 1), Step(1, 1)]


def test_a_level_without_a_delay_waits_the_risk_levels_deadline() -> None:
    assert level_delay(TWO_LEVELS, Step(0, 0), default=120) == 60
    assert level_delay(TWO_LEVELS, Step(1, 0), default=120) == 120


def test_the_fallback_plan_is_the_contracts_escalation() -> None:
    plan = fallback_plan(3)
    assert len(plan.levels) == 4 and all(level.fallback for level in plan.levels)
    assert next_step(plan, Step(3, 0)) is None


def test_what_is_retried_and_what_escalates_at_once() -> None:
    assert classify(200) == "delivered"
    assert [classify(s) for s in (408, 429, 500, 502, 503)] == ["temporary_failure"] * 5
    assert [classify(s) for s in (400, 401, 404, 410)] == ["permanent_failure"] * 4


def test_backoff_grows_with_jitter_and_honours_retry_after_up_to_the_cap() -> None:
    settings = NotifySettings(RETRY_BASE_SECONDS=1.0, RETRY_MAX_SECONDS=8.0)
    for attempt, top in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 8.0)):
        delays = {retry_delay(attempt, settings) for _ in range(50)}
        assert all(top / 2 <= d <= top for d in delays)
        assert len(delays) > 1, "jittered"
    assert retry_delay(1, settings, asked=5) >= 5
    assert retry_delay(1, settings, asked=3600) <= 8.0
    assert retry_after("7") == 7.0
    assert retry_after("Wed, 01 Jan 2025 00:00:10 GMT", now=1735689600.0) == 10.0
    assert retry_after("soon") is None


def test_ack_links_verify_under_the_current_and_the_previous_secret() -> None:
    new, old_key = ack_key("new-secret"), ack_key("old-secret")
    alert_id = uuid.uuid4()
    old = ack_link("http://notify", old_key, alert_id, 60)
    query = dict(p.split("=") for p in old.split("?")[1].split("&"))
    expires, sig = int(query["expires"]), query["sig"]
    assert ack_link_valid([new, old_key], alert_id, expires, sig)
    assert not ack_link_valid([new], alert_id, expires, sig)
    assert not ack_link_valid([old_key], uuid.uuid4(), expires, sig), "bound to its alert"
    assert not ack_link_valid([old_key], alert_id, expires - 3600, sig), "expired"


def test_the_ack_key_is_derived_not_the_secret_itself() -> None:
    """A link MACed with the secret as it stands (what a holder of the webhook secret could
    make, when one secret served both) does not verify under the derived key."""
    alert_id, expires = uuid.uuid4(), int(time.time()) + 60
    raw = hmac.new(b"shared", f"ack.{alert_id}.{expires}".encode(), hashlib.sha256).hexdigest()
    assert not ack_link_valid([ack_key("shared")], alert_id, expires, raw)
    assert ack_key("shared") != ack_key("shared2") and len(ack_key("shared")) == 32
