-- Caring Contacts (services/intake/follow_ups/caring.py): with the person's consent, short, warm,
-- non-demanding messages on a schedule (day 1, weeks 1-4, months 2-12 by default), each at a
-- random time inside 09:00-20:00 in the person's own time zone. The address (a phone number in
-- E.164 or an email address) is PHI, stored encrypted by the application.
CREATE TABLE intake.caring_contacts (
    id uuid PRIMARY KEY,
    follow_up_id uuid NOT NULL REFERENCES intake.follow_ups (id),
    status text NOT NULL CHECK (status IN ('active', 'withdrawn', 'opted_out')),
    channel text NOT NULL CHECK (channel IN ('sms', 'email')),
    address text NOT NULL,
    time_zone text NOT NULL,
    language text NOT NULL,
    schedule text NOT NULL,
    texts_version text NOT NULL,
    recorded_by text NOT NULL,
    recorded_role text NOT NULL,
    recorded_at timestamptz NOT NULL,
    -- Why it ended: staff withdrew consent, the person sent a STOP word, or the provider
    -- refused the number as opted out (Twilio error 21610).
    ended_reason text CHECK (ended_reason IN ('withdrawn', 'stop_word', 'provider_opt_out')),
    ended_by text,
    ended_at timestamptz
);
-- One active enrolment per follow-up (a withdrawn one may be followed by a new consent).
CREATE UNIQUE INDEX caring_contacts_active ON intake.caring_contacts (follow_up_id)
    WHERE status = 'active';
-- A reply is matched to its enrolment among the active and recently ended ones of its channel.
CREATE INDEX caring_contacts_recent ON intake.caring_contacts (channel, recorded_at);

CREATE TABLE intake.caring_messages (
    id uuid PRIMARY KEY,
    contact_id uuid NOT NULL REFERENCES intake.caring_contacts (id),
    sequence integer NOT NULL CHECK (sequence >= 1),
    status text NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
    due_at timestamptz NOT NULL,
    lease_until timestamptz,
    attempts integer NOT NULL DEFAULT 0,
    sent_at timestamptz,
    provider_sid text,
    provider_status text,
    last_error text,
    created_at timestamptz NOT NULL,
    finished_at timestamptz,
    UNIQUE (contact_id, sequence)
);
CREATE INDEX caring_messages_pending_due ON intake.caring_messages (due_at)
    WHERE status = 'pending';
CREATE UNIQUE INDEX caring_messages_provider_sid ON intake.caring_messages (provider_sid)
    WHERE provider_sid IS NOT NULL;

-- Wakes the sender when a message is scheduled, cancelled or its due time moves.
CREATE FUNCTION intake.caring_messages_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('intake_caring_messages', '');
    RETURN NULL;
END $$;
CREATE TRIGGER caring_messages_notify AFTER INSERT OR UPDATE OF due_at, status
    ON intake.caring_messages
    FOR EACH STATEMENT EXECUTE FUNCTION intake.caring_messages_notify();
