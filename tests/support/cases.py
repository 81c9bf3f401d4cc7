"""Screening bodies for tests, one per level path."""

from __future__ import annotations

import uuid
from typing import Any

HIGH_CSSRS = {
    "instrument": "cssrs_screener",
    "answers": {
        "wish_dead": True,
        "suicidal_thoughts": True,
        "method": True,
        "intent": True,
        "plan": False,
        "behavior": False,
    },
}
LOW_CSSRS = {
    "instrument": "cssrs_screener",
    "answers": {"wish_dead": True, "suicidal_thoughts": False, "behavior": False},
}
MODERATE_PHQ9 = {"instrument": "phq9", "answers": {"items": [0, 0, 1, 0, 0, 0, 0, 0, 2]}}
IMMINENT_ASQ = {
    "instrument": "asq",
    "answers": {
        "wished_dead": True,
        "better_off_dead": False,
        "thoughts_past_week": False,
        "ever_attempted": False,
        "thoughts_now": True,
    },
}


def screening(case: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"subject_id": f"test-{uuid.uuid4().hex[:8]}", "source": "hotline", **case, **extra}
