-- Stripe does not deliver events in order. Each tenant (one subscription at a time) keeps the
-- `created` time of the newest subscription-state event applied; an older event for the same
-- subscription changes nothing. `paused` and `incomplete` are states of their own (drafting
-- pauses, nothing is lost).
ALTER TABLE tenants ADD COLUMN stripe_event_at bigint;
ALTER TABLE tenants DROP CONSTRAINT tenants_billing_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_billing_status_check
    CHECK (billing_status IN ('none', 'active', 'past_due', 'canceled', 'paused', 'incomplete'));

-- Global: invoice events that arrived before their customer was linked to a tenant (the
-- checkout's completion may come later). Only what applying them needs: no invoice contents,
-- no personal data. Applied, in `created` order, when the customer is linked.
CREATE TABLE stripe_pending_events (
    id            text PRIMARY KEY,
    type          text NOT NULL,
    customer      text NOT NULL,
    subscription  text,
    created       bigint NOT NULL,
    received_at   timestamptz NOT NULL
);
CREATE INDEX stripe_pending_events_customer ON stripe_pending_events (customer, created);
