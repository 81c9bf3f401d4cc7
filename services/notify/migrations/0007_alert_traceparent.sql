-- The trace context an alert was opened in (shared/tracing.py): its pages continue that trace.
ALTER TABLE notify.alerts ADD COLUMN traceparent text;
