-- Pages by SMS and voice call (Twilio's REST API): the phone kinds of contact methods, a
-- method's opt-out (the phone texted STOP, or the provider refused it as unsubscribed), and what
-- the provider says of each page.

ALTER TABLE notify.contact_methods DROP CONSTRAINT contact_methods_kind_check;
ALTER TABLE notify.contact_methods
    ADD CONSTRAINT contact_methods_kind_check CHECK (kind IN ('webhook', 'email', 'sms', 'voice')),
    -- Set by STOP (or the provider's opt-out error), cleared by START: the method is skipped.
    ADD COLUMN opted_out_at        timestamptz,
    -- Replies from this phone in a row that changed nothing (an auto-responder answers each of
    -- our answers): past a few, they are no longer answered.
    ADD COLUMN unanswered_replies  integer NOT NULL DEFAULT 0;

ALTER TABLE notify.deliveries DROP CONSTRAINT deliveries_channel_check;
ALTER TABLE notify.deliveries
    ADD CONSTRAINT deliveries_channel_check CHECK (channel IN ('webhook', 'email', 'sms', 'voice')),
    -- The provider's id of the last message or call sent for this page, and its last status
    -- (queued, sent, delivered, undelivered, ringing, completed, no-answer, ...).
    ADD COLUMN provider_sid     text,
    ADD COLUMN provider_status  text,
    -- What the phone answered, as the command it was read as (1, ACK, the alert's code, STOP,
    -- a pressed digit); never the free text of a reply.
    ADD COLUMN reply            text;

ALTER TABLE notify.delivery_attempts DROP CONSTRAINT delivery_attempts_outcome_check;
ALTER TABLE notify.delivery_attempts
    ADD CONSTRAINT delivery_attempts_outcome_check CHECK (
        outcome IN ('delivered', 'accepted', 'temporary_failure', 'permanent_failure', 'cancelled'));

-- The alert's short code in texts ("Reply 7K3Q or 1 to acknowledge"), given at its first text:
-- unique among the alerts still open, so a reply names one alert whichever phones it reached.
ALTER TABLE notify.alerts ADD COLUMN reply_code text;
CREATE UNIQUE INDEX alerts_open_reply_code ON notify.alerts (reply_code)
    WHERE reply_code IS NOT NULL AND status NOT IN ('acknowledged', 'resolved');

-- Each provider callback applied once: a repeated MessageSid+status, or CallSid+Digits, is
-- answered but changes nothing.
CREATE TABLE notify.provider_callbacks (
    sid          text        NOT NULL,
    event        text        NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (sid, event)
);
