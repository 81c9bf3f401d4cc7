"""FHIR Bundles: a transaction (all entries or none, in one database transaction) or a batch
(each entry on its own) of QuestionnaireResponses, each stored as one posted alone would be
(service.py); the answer is a transaction-response or batch-response Bundle.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Final

from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from services.intake.fhir.outcomes import FhirError, Issue, operation_outcome, structure_issues
from services.intake.fhir.service import (
    Prepared,
    Stored,
    created_body,
    location,
    prepare,
    store,
    store_one,
)
from services.intake.screenings.service import ConcurrentDuplicate
from shared.auth import Principal
from shared.db import SessionFactory, transaction

MAX_BUNDLE_ENTRIES: Final = 100


def _check_envelope(body: dict[str, Any]) -> tuple[str, list[Any]]:
    kind = body.get("type")
    if kind not in ("transaction", "batch"):
        raise FhirError.one(
            400, "not-supported", "a Bundle must be of type transaction or batch", "Bundle.type"
        )
    entries = body.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError.one(400, "structure", "Bundle.entry must be a list", "Bundle.entry")
    if len(entries) > MAX_BUNDLE_ENTRIES:
        raise FhirError.one(
            400, "too-costly", f"at most {MAX_BUNDLE_ENTRIES} entries per Bundle", "Bundle.entry"
        )
    # The envelope is checked by the model; each resource is parsed on its own below, so that in
    # a batch one broken entry does not refuse the others.
    shell = [
        {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
        for e in entries
    ]
    try:
        Bundle.model_validate({**body, "entry": shell or None})
    except ValidationError as exc:
        raise FhirError(400, structure_issues(exc, prefix="Bundle")) from None
    return kind, entries


def _prepare_entry(i: int, entry: dict[str, Any]) -> Prepared:
    request = entry.get("request") or {}
    url = str(request.get("url") or "").split("?", 1)[0].rstrip("/")
    if request.get("method") != "POST" or not url.endswith("QuestionnaireResponse"):
        raise FhirError.one(
            400,
            "not-supported",
            "only POST QuestionnaireResponse entries are supported",
            f"Bundle.entry[{i}].request",
        )
    return prepare(entry.get("resource"), request.get("ifNoneExist"), f"Bundle.entry[{i}].resource")


def _entry_ok(stored: Stored, prefer: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "response": {
            "status": "202 Accepted" if stored.created else "200 OK",
            "location": location(stored),
            "etag": 'W/"1"',
            "lastModified": stored.screening.received_at.isoformat(),
        }
    }
    body = created_body(stored, prefer)
    if body is not None and body["resourceType"] == "OperationOutcome":
        entry["response"]["outcome"] = body
    elif body is not None:
        entry["resource"] = body
    return entry


def _entry_error(exc: FhirError) -> dict[str, Any]:
    status = HTTPStatus(exc.status)
    return {
        "response": {
            "status": f"{status.value} {status.phrase}",
            "outcome": operation_outcome(exc.issues),
        }
    }


def _at_entry(i: int, exc: FhirError) -> FhirError:
    """An error of one entry, located in the Bundle when it was not already."""
    issues = [
        issue if issue.expression else Issue(issue.code, issue.diagnostics, (f"Bundle.entry[{i}]",))
        for issue in exc.issues
    ]
    return FhirError(exc.status, issues)


async def process_bundle(
    sessions: SessionFactory,
    body: dict[str, Any],
    prefer: str | None,
    correlation_id: str,
    principal: Principal,
) -> dict[str, Any]:
    """The Bundle's entries stored (transaction: all or none; batch: each alone); the
    response Bundle."""
    kind, entries = _check_envelope(body)
    prepared: list[Prepared | FhirError] = []
    for i, entry in enumerate(entries):
        try:
            prepared.append(_prepare_entry(i, entry))
        except FhirError as exc:
            prepared.append(_at_entry(i, exc))
    if kind == "transaction":
        out = await _transaction(sessions, prepared, prefer, correlation_id, principal)
    else:
        out = []
        for i, item in enumerate(prepared):
            if isinstance(item, FhirError):
                out.append(_entry_error(item))
                continue
            try:
                stored = await store_one(sessions, item, correlation_id, principal)
                out.append(_entry_ok(stored, prefer))
            except FhirError as exc:
                out.append(_entry_error(_at_entry(i, exc)))
    response = {"resourceType": "Bundle", "type": f"{kind}-response", "entry": out or None}
    return Bundle.model_validate(response).model_dump(mode="json", exclude_none=True)


async def _transaction(
    sessions: SessionFactory,
    prepared: list[Prepared | FhirError],
    prefer: str | None,
    correlation_id: str,
    principal: Principal,
) -> list[dict[str, Any]]:
    """All entries in one database transaction, or none: the first failure refuses the Bundle."""
    failed = [p for p in prepared if isinstance(p, FhirError)]
    if failed:
        raise FhirError(failed[0].status, [issue for f in failed for issue in f.issues])
    ready = [p for p in prepared if isinstance(p, Prepared)]
    for attempt in (1, 2):
        try:
            async with transaction(sessions) as session:
                stored = []
                for i, item in enumerate(ready):
                    try:
                        stored.append(await store(session, item, correlation_id, principal))
                    except FhirError as exc:
                        raise _at_entry(i, exc) from None
            return [_entry_ok(s, prefer) for s in stored]
        except (IntegrityError, ConcurrentDuplicate):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
