-- The W3C trace context an event was queued in (shared/tracing.py), so that the relay's publish
-- continues the request's trace. NULL while tracing is off.
ALTER TABLE {schema}.outbox ADD COLUMN traceparent text;
ALTER TABLE {schema}.outbox_set_aside ADD COLUMN traceparent text;
