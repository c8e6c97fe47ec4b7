-- MCP integrations: tenant-configured servers, their pinned tools and every tool call.

-- A tenant's MCP server. The secret (bearer token or custom header value) is sealed under
-- the tenant key; only the header's name is in clear.
CREATE TABLE mcp_servers (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    url              text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    auth_kind        text NOT NULL CHECK (auth_kind IN ('none', 'bearer', 'header')),
    auth_header      text CHECK (length(auth_header) <= 100),
    secret_sealed    bytea,
    enabled          boolean NOT NULL DEFAULT true,
    last_success_at  timestamptz,
    last_error       text,
    last_error_at    timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- Tools as an admin approved them (pinned). A listing that differs is kept beside the pin
-- (`changed_*`) and the tool is disabled until an admin re-approves it. New tools arrive
-- disallowed and classed `write`.
CREATE TABLE mcp_tools (
    tenant_id            uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    server_id            uuid NOT NULL,
    name                 text NOT NULL,
    description          text NOT NULL DEFAULT '',
    input_schema         jsonb NOT NULL,
    fingerprint          text NOT NULL,
    allowed              boolean NOT NULL DEFAULT false,
    risk                 text NOT NULL DEFAULT 'write' CHECK (risk IN ('read', 'write')),
    changed_description  text,
    changed_schema       jsonb,
    changed_fingerprint  text,
    changed_at           timestamptz,
    removed_at           timestamptz,
    approved_by          uuid REFERENCES users ON DELETE SET NULL,
    approved_at          timestamptz,
    first_seen_at        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, server_id, name),
    FOREIGN KEY (tenant_id, server_id) REFERENCES mcp_servers (tenant_id, id) ON DELETE CASCADE
);

-- Every call the AI made or prepared, on its draft. Arguments and results are sealed under
-- the contact's key (erasure makes them unreadable with everything else of that contact).
-- Read calls: ok | error | timeout | refused. Write calls: pending → approved → running →
-- done | failed, or rejected. `running` is committed before the call, and a call is never
-- retried automatically once it ran (it may have booked something).
CREATE TABLE mcp_tool_calls (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    draft_id          uuid NOT NULL,
    conversation_id   uuid NOT NULL,
    contact_id        uuid NOT NULL,
    server_id         uuid,
    server_name       text NOT NULL,
    tool              text NOT NULL,
    risk              text NOT NULL CHECK (risk IN ('read', 'write')),
    seq               integer NOT NULL,
    state             text NOT NULL CHECK (state IN ('ok', 'error', 'timeout', 'refused', 'pending', 'approved', 'running', 'done', 'failed', 'rejected')),
    arguments_sealed  bytea NOT NULL,
    result_sealed     bytea,
    error             text,
    latency_ms        integer NOT NULL DEFAULT 0,
    decided_by        uuid REFERENCES users ON DELETE SET NULL,
    decided_at        timestamptz,
    executed_at       timestamptz,
    created_at        timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX mcp_tool_calls_draft ON mcp_tool_calls (tenant_id, draft_id, seq);
CREATE INDEX mcp_tool_calls_pending ON mcp_tool_calls (tenant_id, state, created_at) WHERE state = 'pending';

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['mcp_servers', 'mcp_tools', 'mcp_tool_calls'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END $$;
