"""The on-call configuration API of notify on the real stack: who is on call, and bad input."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from tests.support.pagers import Pagers
from tests.support.roster import Roster


@pytest.fixture
async def roster(notify: httpx.AsyncClient, db: asyncpg.Pool) -> AsyncIterator[Roster]:
    on_call = Roster(notify, Pagers(port=9), db)  # no pages go out: nothing is bound to a level
    yield on_call
    await on_call.cleanup()


async def test_oncall_follows_the_roster_across_a_dst_change_and_an_override(
    notify: httpx.AsyncClient, roster: Roster
) -> None:
    a, b = await roster.clinician("a"), await roster.clinician("b")
    rotation = {
        "clinician_ids": [a.id, b.id],
        "shift_hours": 24,
        "start": "2026-03-06T08:00:00",  # wall-clock time in New York
        "time_zone": "America/New_York",
    }
    made = await notify.post("/v1/schedules", json={"name": "nights", "rotations": [rotation]})
    assert made.status_code == 201, made.text
    schedule_id = made.json()["id"]

    async def on_call(at: str) -> dict:
        answer = await notify.get("/v1/oncall", params={"at": at, "schedule_id": schedule_id})
        assert answer.status_code == 200, answer.text
        return answer.json()["oncall"][0]

    # 2026-03-08 is the spring-forward day: the 08:00 handoff is 12:00Z, not 13:00Z.
    assert (await on_call("2026-03-08T11:59:59Z"))["clinician_id"] == b.id
    after = await on_call("2026-03-08T12:00:00Z")
    assert after["clinician_id"] == a.id and after["source"] == "rotation"
    assert after["start"].startswith("2026-03-08T12:00:00")
    assert (await on_call("2026-03-06T12:59:00Z"))["clinician_id"] is None, "before the start"

    cover = {"clinician_id": b.id, "start": "2026-03-08T14:00:00Z", "end": "2026-03-08T16:00:00Z"}
    added = await notify.post(f"/v1/schedules/{schedule_id}/overrides", json=cover)
    assert added.status_code == 201
    covered = await on_call("2026-03-08T15:00:00Z")
    assert covered["clinician_id"] == b.id and covered["source"] == "override"
    assert covered["clinician"] == "b"
    removed = await notify.delete(f"/v1/schedules/{schedule_id}/overrides/{added.json()['id']}")
    assert removed.status_code == 204
    assert (await on_call("2026-03-08T15:00:00Z"))["clinician_id"] == a.id

    shown = (await notify.get(f"/v1/schedules/{schedule_id}")).json()
    assert shown["rotations"][0]["start"] == "2026-03-06T08:00:00"


async def test_bad_configuration_is_refused_without_echoing_it(
    notify: httpx.AsyncClient, roster: Roster
) -> None:
    secret_url = "ftp://pager.example.org/token-abc123"
    bad_method = await notify.post(
        "/v1/clinicians",
        json={"name": "x", "contact_methods": [{"kind": "webhook", "address": secret_url}]},
    )
    assert bad_method.status_code == 422 and "token-abc123" not in bad_method.text
    bad_zone = await notify.post(
        "/v1/schedules",
        json={
            "name": "s",
            "rotations": [
                {
                    "clinician_ids": [str(uuid.uuid4())],
                    "shift_hours": 12,
                    "start": "2026-01-01T08:00:00",
                    "time_zone": "Mars/Olympus_Mons",
                }
            ],
        },
    )
    assert bad_zone.status_code == 422
    assert "time zone" in bad_zone.json()["problems"][0]["problem"]
    unknown = await notify.post(
        "/v1/policies",
        json={"name": "p", "levels": [{"clinician_ids": [str(uuid.uuid4())]}]},
    )
    assert unknown.status_code == 422
    assert unknown.json()["problems"] == [
        {"field": "levels.0.clinician_ids", "problem": "unknown clinician id"}
    ]
    nobody = await notify.post("/v1/policies", json={"name": "p", "levels": [{}]})
    assert nobody.status_code == 422
    naive = await notify.get("/v1/oncall", params={"at": "2026-03-08T12:00:00"})
    assert naive.status_code == 422


async def test_one_policy_per_risk_level_and_a_deleted_policy_frees_it(
    notify: httpx.AsyncClient, roster: Roster
) -> None:
    a = await roster.clinician("a")
    level = [{"clinician_ids": [a.id]}]
    first = await roster.policy(["moderate"], level)
    clash = await notify.post(
        "/v1/policies", json={"name": "second", "risk_levels": ["moderate"], "levels": level}
    )
    assert clash.status_code == 409 and clash.json()["error"] == "conflict"

    assert (await notify.delete(f"/v1/policies/{first}")).status_code == 204
    assert (await notify.get(f"/v1/policies/{first}")).status_code == 404
    again = await roster.policy(["moderate"], level, repeats=2)
    shown = (await notify.get(f"/v1/policies/{again}")).json()
    assert shown["risk_levels"] == ["moderate"] and shown["repeats"] == 2
    assert shown["levels"][0]["delay_seconds"] is None, "the risk level's deadline applies"


async def test_contact_methods_are_added_and_removed(
    notify: httpx.AsyncClient, roster: Roster
) -> None:
    a = await roster.clinician("a")
    added = await notify.post(
        f"/v1/clinicians/{a.id}/contact-methods",
        json={"kind": "email", "address": "a@clinic.example.org", "delay_seconds": 120},
    )
    assert added.status_code == 201
    methods = (await notify.get(f"/v1/clinicians/{a.id}")).json()["contact_methods"]
    assert [(m["kind"], m["position"], m["delay_seconds"]) for m in methods] == [
        ("webhook", 0, 0),
        ("email", 1, 120),
    ]
    gone = await notify.delete(f"/v1/clinicians/{a.id}/contact-methods/{added.json()['id']}")
    assert gone.status_code == 204
    methods = (await notify.get(f"/v1/clinicians/{a.id}")).json()["contact_methods"]
    assert [m["kind"] for m in methods] == ["webhook"]


async def test_times_outside_1970_to_9000_are_refused_not_stored(
    notify: httpx.AsyncClient, roster: Roster
) -> None:
    """Year 1 east of UTC or 9999 west of it has no instant in Python's range: such a rotation
    was stored, and then every on-call look-up (pages included) failed with OverflowError."""
    a = await roster.clinician("a")
    rotation = {"clinician_ids": [a.id], "shift_hours": 1, "time_zone": "Asia/Tokyo"}
    for start in ("0001-01-01T00:00:00", "9999-12-31T23:00:00-05:00"):
        made = await notify.post(
            "/v1/schedules", json={"name": "s", "rotations": [{**rotation, "start": start}]}
        )
        assert made.status_code == 422, made.text
        assert made.json()["problems"][0]["field"] == "rotations.0.start"
    schedule = await notify.post("/v1/schedules", json={"name": "s", "rotations": []})
    cover = {
        "clinician_id": a.id,
        "start": "0001-01-01T00:00:00+01:00",
        "end": "2026-01-01T00:00:00Z",
    }
    added = await notify.post(f"/v1/schedules/{schedule.json()['id']}/overrides", json=cover)
    assert added.status_code == 422 and added.json()["problems"][0]["field"] == "start"
    at = await notify.get("/v1/oncall", params={"at": "0001-01-01T00:00:00+01:00"})
    assert at.status_code == 422 and at.json()["problems"] == [
        {"field": "at", "problem": "must be between 1970 and 9000"}
    ]
