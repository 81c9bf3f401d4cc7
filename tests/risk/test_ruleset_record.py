"""The rule set in force is recorded under its version, and a changed file cannot reuse one."""

from __future__ import annotations

import dataclasses

import pytest

from services.risk.rules import RuleSetError, load_ruleset
from services.risk.service import record_ruleset
from shared.db import create_engine, create_session_factory, transaction


async def test_a_rule_set_edited_without_a_new_version_is_refused(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    sessions = create_session_factory(engine)
    ruleset = load_ruleset()
    try:
        for _ in range(2):  # recording the same content again is harmless
            async with transaction(sessions) as session:
                await record_ruleset(session, ruleset=ruleset)

        edited = {**ruleset.content, "note": "a clinic changed a reason but kept the version"}

        @dataclasses.dataclass
        class Edited:
            version: str
            content: dict

        with pytest.raises(RuleSetError, match="new version"):
            async with transaction(sessions) as session:
                await record_ruleset(session, ruleset=Edited(ruleset.version, edited))  # type: ignore[arg-type]
    finally:
        await engine.dispose()
