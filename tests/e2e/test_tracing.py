"""One screening's POST, its relay publish, risk's consume and assessment, notify's alert and the
page's HTTP call form one trace; no span attribute carries what a person gave."""

from __future__ import annotations

import secrets

import httpx

from tests.support.cases import HIGH_CSSRS, screening
from tests.support.otlp import Collector, Span
from tests.support.receiver import Receiver

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP's span kinds
CANARY = {"name": "Trace Canary Person", "phone": "+1 555 0199 2718"}
CANARY_NOTES = "trace canary note: the overpass by the school"


def _one(spans: list[Span], service: str, name: str) -> Span:
    found = [s for s in spans if s.service == service and s.name == name]
    assert len(found) == 1, (service, name, [(s.service, s.name) for s in spans])
    return found[0]


async def test_one_screening_is_one_trace_from_the_post_to_the_page(
    intake: httpx.AsyncClient, receiver: Receiver, collector: Collector
) -> None:
    # The caller's own trace (an EHR that traces): every span of the path continues it.
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    body = screening(HIGH_CSSRS, contact=CANARY, notes=CANARY_NOTES)
    posted = await intake.post(
        "/v1/screenings", json=body, headers={"traceparent": f"00-{trace_id}-{caller_span}-01"}
    )
    assert posted.status_code == 202, posted.text
    sid = posted.json()["id"]
    assert await receiver.wait_for(sid, timeout=10), "the screening was not paged"

    submitted, assessed = "triage.screening.submitted.v1", "triage.risk.assessed.v1"
    spans = await collector.wait_for(
        trace_id,
        {f"publish {submitted}", f"consume {submitted}", f"publish {assessed}",
         f"consume {assessed}", "page webhook"},
    )  # fmt: skip
    post = next(
        s
        for s in spans
        if s.service == "intake" and s.kind == SERVER and s.attributes.get("http.route")
    )
    assert post.attributes["http.route"] == "/v1/screenings" and post.parent_span_id == caller_span
    publish = _one(spans, "intake", f"publish {submitted}")
    consume = _one(spans, "risk", f"consume {submitted}")
    republish = _one(spans, "risk", f"publish {assessed}")
    alerted = _one(spans, "notify", f"consume {assessed}")
    page = _one(spans, "notify", "page webhook")
    # Each step is the child of the one before, across the outbox and Kafka.
    assert consume.parent_span_id == publish.span_id and consume.kind == CONSUMER
    assert publish.kind == PRODUCER and republish.kind == PRODUCER
    assert alerted.parent_span_id == republish.span_id
    assert page.parent_span_id == alerted.span_id
    http_call = [s for s in spans if s.service == "notify" and s.parent_span_id == page.span_id]
    assert http_call and http_call[0].kind == CLIENT, "the page's HTTP call is in the trace"
    # The database work of each service is in it too (asyncpg's spans).
    assert {"intake", "risk", "notify"} <= {
        s.service for s in spans if "db.system" in s.attributes or "db.system.name" in s.attributes
    }

    # Nothing a person gave is in any span of any trace exported so far.
    everything = repr([(s.name, s.attributes) for s in collector.spans])
    for planted in (*CANARY.values(), CANARY_NOTES):
        assert planted not in everything, "a planted value is in a span"
    assert len(collector.spans) > 20
