-- Issue 21: outgoing webhooks (Standard Webhooks). A tenant subscribes endpoints to events;
-- each event becomes one delivery row per subscribed endpoint (an outbox) plus a
-- `webhook_deliver` job, in the transaction where the event happened.

-- An endpoint. The signing secret (`whsec_…`) is sealed under the tenant key and shown once.
-- `include_text` is the tenant's opt-in to send message text (recorded as a recipient).
-- An endpoint whose delivery kept failing for a day is disabled (`disabled_reason =
-- 'failing'`) and the portal says so until an admin enables it again.
CREATE TABLE webhook_endpoints (
    id                    uuid PRIMARY KEY,
    tenant_id             uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    url                   text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    description           text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    events                text[] NOT NULL,
    include_text          boolean NOT NULL DEFAULT false,
    secret_sealed         bytea NOT NULL,
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text CHECK (disabled_reason IN ('manual', 'failing')),
    disabled_at           timestamptz,
    last_success_at       timestamptz,
    last_failure_at       timestamptz,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id) WHERE enabled;

-- One event for one endpoint. `id` is the `webhook-id` (the same on every retry and on a
-- replay). `data` holds ids and minimal fields only; message text is never stored here — it
-- is opened from the sealed message at delivery time when the endpoint opted in.
-- pending → delivered | failed (gave up, or the endpoint was disabled or deleted).
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    endpoint_id      uuid NOT NULL,
    event_type       text NOT NULL CHECK (length(event_type) BETWEEN 1 AND 60),
    data             jsonb NOT NULL,
    occurred_at      timestamptz NOT NULL,
    -- At most one delivery per (endpoint, key): an event that may be noticed twice (a DSR
    -- coming due) is delivered once.
    dedupe_key       text,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    FOREIGN KEY (tenant_id, endpoint_id) REFERENCES webhook_endpoints (tenant_id, id) ON DELETE CASCADE,
    UNIQUE (endpoint_id, dedupe_key)
);
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (tenant_id, endpoint_id, created_at DESC);

-- Every attempt: when, how long, what the endpoint answered (status code or a short reason).
CREATE TABLE webhook_attempts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    delivery_id   uuid NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempted_at  timestamptz NOT NULL,
    status        integer,
    error         text CHECK (length(error) <= 300),
    duration_ms   integer NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempted_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_deliveries', 'webhook_attempts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END $$;

-- A webhook endpoint that receives message text is a recipient of the contact's data.
ALTER TABLE data_recipients DROP CONSTRAINT data_recipients_kind_check;
ALTER TABLE data_recipients ADD CONSTRAINT data_recipients_kind_check
    CHECK (kind IN ('ai_provider', 'mcp_server', 'webhook'));

-- The owners and admins are e-mailed when an endpoint is disabled after failing for a day.
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check
    CHECK (kind IN ('invitation', 'password_reset', 'new_device', 'dsr_due', 'review_waiting',
                    'billing_problem', 'webhook_disabled'));
