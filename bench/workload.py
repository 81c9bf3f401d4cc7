"""The screenings a benchmark sends: a realistic mix of instruments, about 30 % flagged.

Which screening must page is not labelled by hand: every answer set is assessed with the bundled
rule set, so the benchmark's expectation is the clinical rules' own. The mix is seeded, so two
runs with the same options send the same screenings in the same order.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from services.risk.rules import RuleSet, load_ruleset
from shared.instruments import InvalidAnswers

#: Share of each instrument among screenings (hotline C-SSRS, primary-care PHQ-9, ED/peds ASQ).
INSTRUMENT_MIX: Mapping[str, float] = {"cssrs_screener": 0.45, "phq9": 0.35, "asq": 0.20}
#: Share of hotline screenings where staff judge imminent danger (always flagged).
IMMINENT_DANGER_SHARE = 0.02
_PHQ9_SAMPLES = 4000


@dataclass(frozen=True)
class Screening:
    """One request of the run: its body (bytes, ready to send) and whether it must page."""

    body: bytes
    instrument: str
    flagged: bool
    level: str


@dataclass(frozen=True)
class _Answers:
    instrument: str
    answers: dict[str, Any]
    imminent_danger: bool
    level: str
    flagged: bool


def _cssrs_candidates() -> Iterator[dict[str, Any]]:
    """Every C-SSRS screener form that respects its skip logic."""
    for wish, thoughts, behavior in itertools.product((False, True), repeat=3):
        follow_ups = itertools.product((False, True), repeat=3) if thoughts else [(None,) * 3]
        recency = (None, False, True) if behavior else (None,)
        for (method, intent, plan), recent in itertools.product(follow_ups, recency):
            answers: dict[str, Any] = {
                "wish_dead": wish,
                "suicidal_thoughts": thoughts,
                "behavior": behavior,
            }
            if thoughts:
                answers |= {"method": method, "intent": intent, "plan": plan}
            if recent is not None:
                answers["behavior_past_3_months"] = recent
            yield answers


def _asq_candidates() -> Iterator[dict[str, Any]]:
    """Every ASQ form: Q1-Q4 yes/no/refused, Q5 asked only after a positive Q1-Q4."""
    for q in itertools.product((False, True, "refused"), repeat=4):
        base = dict(
            zip(
                ("wished_dead", "better_off_dead", "thoughts_past_week", "ever_attempted"),
                q,
                strict=True,
            )
        )
        now_options = (None, False, True) if any(v is not False for v in q) else (None,)
        for now in now_options:
            yield base if now is None else {**base, "thoughts_now": now}


def _phq9_candidates(rng: random.Random) -> Iterator[dict[str, Any]]:
    """PHQ-9 forms drawn item by item, most answers low as in a screened population."""
    for _ in range(_PHQ9_SAMPLES):
        yield {"items": [rng.choices((0, 1, 2, 3), weights=(55, 25, 12, 8))[0] for _ in range(9)]}


def _classified(
    ruleset: RuleSet, rng: random.Random
) -> dict[tuple[str, bool, bool], list[_Answers]]:
    """Answer sets by (instrument, must page, imminent danger), each assessed by the rule set."""
    pools: dict[tuple[str, bool, bool], list[_Answers]] = {}
    sources = {
        "cssrs_screener": _cssrs_candidates(),
        "asq": _asq_candidates(),
        "phq9": _phq9_candidates(rng),
    }
    for instrument, candidates in sources.items():
        for answers in candidates:
            for danger in (False, True):
                try:
                    result = ruleset.assess(instrument, answers, imminent_danger=danger)
                except InvalidAnswers:
                    continue
                level = str(result.level)
                pages = ruleset.flagged(level)
                item = _Answers(instrument, answers, danger, level, pages)
                pools.setdefault((instrument, pages, danger), []).append(item)
    return pools


def build_workload(
    count: int, *, flagged_share: float = 0.3, seed: int = 2026, ruleset: RuleSet | None = None
) -> list[Screening]:
    """`count` screenings in send order; exactly round(count * flagged_share) of them page."""
    rng = random.Random(seed)
    pools = _classified(ruleset or load_ruleset(), rng)
    paging = set(rng.sample(range(count), round(count * flagged_share)))
    instruments, weights = zip(*INSTRUMENT_MIX.items(), strict=True)
    run = uuid.uuid4().hex[:8]
    out: list[Screening] = []
    for i in range(count):
        flagged = i in paging
        instrument = rng.choices(instruments, weights)[0]
        danger = flagged and rng.random() < IMMINENT_DANGER_SHARE / max(flagged_share, 0.01)
        chosen = rng.choice(pools[(instrument, flagged, danger)])
        body: dict[str, Any] = {
            "subject_id": f"bench-{run}-{i}",
            "source": "hotline" if instrument == "cssrs_screener" else "ehr",
            "instrument": instrument,
            "answers": chosen.answers,
        }
        if chosen.imminent_danger:
            body["imminent_danger"] = True
        if body["source"] == "hotline":
            body["contact"] = {"name": f"Caller {i}", "phone": f"+1 555 {i % 10_000:04d}"}
        out.append(
            Screening(
                body=json.dumps(body, separators=(",", ":")).encode(),
                instrument=instrument,
                flagged=flagged,
                level=chosen.level,
            )
        )
    return out
