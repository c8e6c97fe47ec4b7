-- AI drafting and review before delivery.

-- Per-tenant AI configuration. The tenant's own API key is sealed under the tenant key.
CREATE TABLE ai_settings (
    tenant_id          uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    provider           text NOT NULL DEFAULT 'offline',
    model              text NOT NULL DEFAULT '',
    base_url           text,
    api_key_sealed     bytea,
    fallback_provider  text,
    fallback_model     text,
    instructions       text NOT NULL DEFAULT '' CHECK (length(instructions) <= 4000),
    tone               text NOT NULL DEFAULT '' CHECK (length(tone) <= 200),
    -- review_all: every draft waits for staff; auto_send: drafts are sent; off: no drafts.
    policy             text NOT NULL DEFAULT 'review_all' CHECK (policy IN ('review_all', 'auto_send', 'off')),
    -- Per-tenant limits on top of the plan's (NULL: the plan's).
    daily_call_limit   integer CHECK (daily_call_limit > 0),
    updated_at         timestamptz NOT NULL
);

-- The tenant's business knowledge (not personal data): FAQ, hours, services, prices.
CREATE TABLE knowledge_entries (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('faq', 'hours', 'service', 'price', 'other')),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 8000),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE INDEX knowledge_tenant ON knowledge_entries (tenant_id, created_at);

-- Drafts with provenance. Text is sealed under the contact's key. `original_sealed` keeps
-- what the AI wrote; `final_sealed` what was approved (the diff shows the staff edit).
CREATE TABLE drafts (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    conversation_id     uuid NOT NULL,
    contact_id          uuid NOT NULL,
    -- The newest inbound message this draft answers.
    reply_to_message_id uuid NOT NULL,
    state               text NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'superseded', 'escalated', 'dismissed')),
    original_sealed     bytea,
    final_sealed        bytea,
    escalation_reason   text,
    provider            text NOT NULL,
    model               text NOT NULL DEFAULT '',
    prompt_version      text NOT NULL DEFAULT '',
    knowledge_ids       uuid[] NOT NULL DEFAULT '{}',
    input_tokens        integer NOT NULL DEFAULT 0,
    output_tokens       integer NOT NULL DEFAULT 0,
    latency_ms          integer NOT NULL DEFAULT 0,
    auto_sent           boolean NOT NULL DEFAULT false,
    decided_by          uuid REFERENCES users ON DELETE SET NULL,
    decided_at          timestamptz,
    reject_reason       text,
    edited              boolean NOT NULL DEFAULT false,
    sent_message_id     uuid,
    created_at          timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);
-- At most one draft awaiting review per conversation; one draft per inbound turn.
CREATE UNIQUE INDEX drafts_one_pending ON drafts (tenant_id, conversation_id) WHERE state = 'pending';
CREATE UNIQUE INDEX drafts_one_per_turn ON drafts (tenant_id, reply_to_message_id);
CREATE INDEX drafts_queue ON drafts (tenant_id, state, created_at);

-- Who received a contact's data (AI providers, MCP servers): exports list them, erasure
-- requests name them.
CREATE TABLE data_recipients (
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    contact_id  uuid NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('ai_provider', 'mcp_server')),
    name        text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    times       integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, contact_id, kind, name),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);

-- Usage per tenant per day per provider (calls, failures, tokens).
CREATE TABLE ai_usage (
    tenant_id      uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    day            date NOT NULL,
    provider       text NOT NULL,
    calls          integer NOT NULL DEFAULT 0,
    failures       integer NOT NULL DEFAULT 0,
    drafts         integer NOT NULL DEFAULT 0,
    input_tokens   bigint NOT NULL DEFAULT 0,
    output_tokens  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day, provider)
);

-- A conversation a human must look at, and why (escalation, provider failure, limits).
ALTER TABLE conversations ADD COLUMN attention text;
ALTER TABLE conversations ADD COLUMN attention_at timestamptz;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['ai_settings', 'knowledge_entries', 'drafts', 'data_recipients', 'ai_usage'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END $$;
