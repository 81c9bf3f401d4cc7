"""Caring Contacts as FHIR R4 resources, built and validated by fhir.resources (no I/O)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.intake.follow_ups.fhir import bundle
from services.intake.follow_ups.models import CaringContact, CaringMessage, FollowUp

NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
SUBJECT = {"identifier": {"system": "urn:crisis-triage:fhir:subject-id", "value": "caller-1"}}


def enrolment(status: str = "active") -> tuple[FollowUp, CaringContact, list[CaringMessage]]:
    follow_up = FollowUp(id=uuid.uuid4(), screening_id=uuid.uuid4())
    contact = CaringContact(
        id=uuid.uuid4(),
        follow_up_id=follow_up.id,
        status=status,
        channel="sms",
        address="+12015550123",
        time_zone="America/New_York",
        language="es",
        schedule="1d,1w",
        texts_version="2026-12.1",
        recorded_by="jsmith",
        recorded_role="hotline",
        recorded_at=NOW,
        ended_reason=None if status == "active" else "stop_word",
    )
    messages = [
        CaringMessage(
            id=uuid.uuid4(),
            contact_id=contact.id,
            sequence=1,
            status="sent",
            due_at=NOW + timedelta(days=1),
            sent_at=NOW + timedelta(days=1),
            provider_sid="SM" + "a" * 32,
            provider_status="delivered",
        ),
        CaringMessage(
            id=uuid.uuid4(),
            contact_id=contact.id,
            sequence=2,
            status="pending" if status == "active" else "cancelled",
            due_at=NOW + timedelta(days=7),
            sent_at=None,
            provider_sid=None,
            provider_status=None,
        ),
    ]
    return follow_up, contact, messages


def test_a_request_per_enrolment_and_a_communication_per_message_sent() -> None:
    follow_up, contact, messages = enrolment()
    document = bundle(follow_up, SUBJECT, [(contact, messages)]).model_dump(
        mode="json", exclude_none=True
    )
    request, sent = (e["resource"] for e in document["entry"])
    assert request["resourceType"] == "CommunicationRequest" and request["status"] == "active"
    assert request["occurrencePeriod"]["start"].startswith("2026-12-02")
    assert request["occurrencePeriod"]["end"].startswith("2026-12-08")
    assert request["subject"] == SUBJECT and request["authoredOn"].startswith("2026-12-01")
    assert sent["resourceType"] == "Communication" and sent["status"] == "completed"
    assert sent["basedOn"][0]["reference"] == f"CommunicationRequest/{contact.id}"
    assert "ALTO" in sent["payload"][0]["contentString"]
    assert "2015550123" not in str(document)


def test_an_ended_enrolment_is_revoked() -> None:
    follow_up, contact, messages = enrolment("opted_out")
    document = bundle(follow_up, SUBJECT, [(contact, messages)]).model_dump(
        mode="json", exclude_none=True
    )
    assert document["entry"][0]["resource"]["status"] == "revoked"
    assert document["entry"][0]["resource"]["statusReason"]["text"] == "stop_word"
    assert len(document["entry"]) == 2, "a cancelled message is no Communication"
