"""FHIR R4 out: a follow-up's Caring Contacts as CommunicationRequest (one per enrolment: the
schedule, from the person's consent) and Communication (one per message sent or failed) of the
screening's subject, validated by the FHIR model library.

No number or address is in them (PHI the EHR does not need to see the schedule): the medium says
SMS or email, the payload is the versioned text itself (the same for everyone), the provider's
message sid is an identifier, and the subject is the EHR's own Patient reference for a FHIR
screening, or the screening's subject id.
"""

from __future__ import annotations

from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.communicationrequest import CommunicationRequest

from services.intake.fhir.models import FhirResponse
from services.intake.fhir.risk import SUBJECT_SYSTEM, URI_SYSTEM
from services.intake.follow_ups import texts
from services.intake.follow_ups.models import CaringContact, CaringMessage, FollowUp
from services.intake.screenings.models import Screening

PARTICIPATION_MODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
MESSAGE_SID_SYSTEM: Final = "urn:crisis-triage:fhir:provider-message-sid"
CATEGORY_SYSTEM: Final = "urn:crisis-triage:fhir:communication-category"
_MEDIUM = {
    "sms": {"code": "SMSWRIT", "display": "SMS written"},
    "email": {"code": "EMAILWRIT", "display": "email"},
}
_REQUEST_STATUS = {"active": "active", "withdrawn": "revoked", "opted_out": "revoked"}
_CATEGORY = {
    "coding": [{"system": CATEGORY_SYSTEM, "code": "caring-contact", "display": "Caring Contact"}]
}


def subject_of(screening: Screening, source: FhirResponse | None) -> dict[str, Any]:
    if source is not None:
        return dict(source.subject)
    return {"identifier": {"system": SUBJECT_SYSTEM, "value": screening.subject_id}}


def communication_request(
    follow_up: FollowUp,
    contact: CaringContact,
    messages: list[CaringMessage],
    subject: dict[str, Any],
) -> CommunicationRequest:
    dues = [m.due_at for m in messages]
    resource: dict[str, Any] = {
        "resourceType": "CommunicationRequest",
        "id": str(contact.id),
        "identifier": [{"system": URI_SYSTEM, "value": f"urn:uuid:{contact.id}"}],
        "basedOn": [{"identifier": {"system": URI_SYSTEM, "value": f"urn:uuid:{follow_up.id}"}}],
        "status": _REQUEST_STATUS[contact.status],
        "category": [_CATEGORY],
        "priority": "routine",
        "medium": [{"coding": [{"system": PARTICIPATION_MODE, **_MEDIUM[contact.channel]}]}],
        "subject": subject,
        "recipient": [subject],
        "authoredOn": contact.recorded_at.isoformat(),
        "requester": {"display": contact.recorded_by},
        "note": [
            {
                "text": f"Caring Contacts, schedule {contact.schedule}, texts"
                f" {contact.texts_version} ({contact.language}), time zone {contact.time_zone}"
            }
        ],
    }
    if dues:
        resource["occurrencePeriod"] = {
            "start": min(dues).isoformat(),
            "end": max(dues).isoformat(),
        }
    if contact.ended_reason:
        resource["statusReason"] = {"text": contact.ended_reason}
    return CommunicationRequest.model_validate(resource)


def communication(
    contact: CaringContact, message: CaringMessage, subject: dict[str, Any]
) -> Communication | None:
    """The message as an event; None for one not sent or failed (it is in the request's plan)."""
    if message.status not in ("sent", "failed"):
        return None
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": str(message.id),
        "basedOn": [{"reference": f"CommunicationRequest/{contact.id}"}],
        "status": "completed" if message.status == "sent" else "not-done",
        "category": [_CATEGORY],
        "medium": [{"coding": [{"system": PARTICIPATION_MODE, **_MEDIUM[contact.channel]}]}],
        "subject": subject,
        "recipient": [subject],
        "payload": [
            {
                "contentString": texts.text_for(
                    contact.language, message.sequence, contact.texts_version
                )
            }
        ],
    }
    if message.sent_at is not None:
        resource["sent"] = message.sent_at.isoformat()
    if message.provider_sid:
        resource["identifier"] = [{"system": MESSAGE_SID_SYSTEM, "value": message.provider_sid}]
    if message.status == "failed":
        resource["statusReason"] = {"text": message.provider_status or "failed"}
    return Communication.model_validate(resource)


def bundle(
    follow_up: FollowUp,
    subject: dict[str, Any],
    enrolments: list[tuple[CaringContact, list[CaringMessage]]],
) -> Bundle:
    """Every enrolment's CommunicationRequest followed by its Communications."""
    entries: list[dict[str, Any]] = []
    for contact, messages in enrolments:
        request = communication_request(follow_up, contact, messages, subject)
        entries.append({"fullUrl": f"urn:uuid:{contact.id}", "resource": request})
        for message in messages:
            event = communication(contact, message, subject)
            if event is not None:
                entries.append({"fullUrl": f"urn:uuid:{message.id}", "resource": event})
    return Bundle.model_validate({"resourceType": "Bundle", "type": "collection", "entry": entries})
