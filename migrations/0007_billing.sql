-- Plans and billing with Stripe. Plans themselves are static data (src/domain/plans.rs);
-- Stripe only maps subscriptions onto them.

ALTER TABLE tenants ADD COLUMN stripe_customer_id text UNIQUE;
ALTER TABLE tenants ADD COLUMN stripe_subscription_id text;
-- none: never subscribed (the plan chosen at sign-up, unpaid trial); active; past_due (a
-- payment failed: grace until grace_until); canceled.
ALTER TABLE tenants ADD COLUMN billing_status text NOT NULL DEFAULT 'none'
    CHECK (billing_status IN ('none', 'active', 'past_due', 'canceled'));
ALTER TABLE tenants ADD COLUMN grace_until timestamptz;

-- Global: Stripe webhook events already handled (deduplicated by Stripe's event id).
CREATE TABLE stripe_events (
    id           text PRIMARY KEY,
    type         text NOT NULL,
    tenant_id    uuid,
    received_at  timestamptz NOT NULL
);
