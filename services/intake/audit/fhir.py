"""The audit trail as FHIR R4 AuditEvents (in the style of IHE Basic Audit Log Patterns), so an
EHR's compliance tooling can read it: a searchset Bundle, each entry validated by fhir.resources.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent

_ACTIONS = {"GET": "R", "POST": "C", "PUT": "U", "DELETE": "D"}
_OUTCOMES = {"success": "0", "break-glass": "0", "not_found": "4", "denied": "8"}
_VERBS = (("get_", "R"), ("read_", "R"), ("list_", "R"), ("post_", "C"), ("create_", "C"))


def _action(action: str) -> str:
    """C/R/U/D/E from the operation's name (reads are `get_…`, `read_…`; creations `post_…`)."""
    return next((code for prefix, code in _VERBS if action.startswith(prefix)), "E")


def audit_event(entry: dict[str, Any], base: str) -> dict[str, Any]:
    kind, _, ident = entry["resource"].partition("/")
    agent: dict[str, Any] = {
        "who": {
            "identifier": {
                "system": "urn:crisis-triage:credential",
                "value": entry["credential_id"],
            },
            "display": entry["actor"],
        },
        "requestor": True,
        "role": [{"text": entry["role"]}],
        "network": {"address": entry["client"], "type": "2"},
    }
    if entry.get("reason"):
        agent["purposeOfUse"] = [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                        "code": "ETREAT",
                    }
                ],
                "text": "break-glass",
            }
        ]
    resource = {
        "resourceType": "AuditEvent",
        "id": str(entry["seq"]),
        "meta": {"source": base},
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "subtype": [{"system": "urn:crisis-triage:audit:action", "code": entry["action"]}],
        "action": _action(entry["action"]),
        "recorded": entry["at"].isoformat(),
        "outcome": _OUTCOMES.get(entry["outcome"], "4"),
        "outcomeDesc": entry["outcome"],
        "agent": [agent],
        "source": {
            "observer": {"display": f"crisis-triage {entry['service']}"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": [
            {
                "what": {
                    "identifier": {"system": f"urn:crisis-triage:{kind}", "value": ident or kind}
                },
                **({"description": entry["reason"]} if entry.get("reason") else {}),
            }
        ],
    }
    return AuditEvent.model_validate(resource).model_dump(mode="json", exclude_none=True)
