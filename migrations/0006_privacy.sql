-- Privacy controls: retention settings, data-subject requests with status history,
-- erasure tombstones, retention-sweep records, and tenant termination.

CREATE TABLE privacy_settings (
    tenant_id            uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    -- Messages older than this are deleted (bounded by the plan's retention).
    message_days         integer NOT NULL CHECK (message_days >= 30),
    -- NULL: media is deleted as soon as its conversation turn is handled (triage);
    -- otherwise kept this many days.
    media_days           integer CHECK (media_days BETWEEN 1 AND 90),
    -- AI drafts and their traces.
    ai_trace_days        integer NOT NULL DEFAULT 365 CHECK (ai_trace_days BETWEEN 30 AND 1095),
    -- Messages that open a data-subject request when an end user writes them.
    dsr_keywords         text[] NOT NULL DEFAULT ARRAY['APAGAR MEUS DADOS', 'DELETE MY DATA'],
    default_legal_basis  text NOT NULL DEFAULT 'lgpd' CHECK (default_legal_basis IN ('gdpr', 'lgpd')),
    updated_at           timestamptz NOT NULL
);

CREATE TABLE dsr_requests (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    -- Not a foreign key: the request outlives the contact it erased.
    contact_id     uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('access', 'portability', 'rectification', 'erasure', 'restriction', 'objection')),
    legal_basis    text NOT NULL CHECK (legal_basis IN ('gdpr', 'lgpd')),
    status         text NOT NULL CHECK (status IN ('received', 'verified', 'in_progress', 'completed', 'denied')),
    source         text NOT NULL CHECK (source IN ('staff', 'keyword')),
    received_at    timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    completed_at   timestamptz,
    denial_reason  text,
    created_by     uuid REFERENCES users ON DELETE SET NULL,
    UNIQUE (tenant_id, id)
);
CREATE INDEX dsr_open ON dsr_requests (tenant_id, due_at) WHERE status NOT IN ('completed', 'denied');

CREATE TABLE dsr_events (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    request_id   uuid NOT NULL,
    at           timestamptz NOT NULL,
    actor_label  text NOT NULL,
    status       text NOT NULL,
    note         text NOT NULL DEFAULT '',
    FOREIGN KEY (tenant_id, request_id) REFERENCES dsr_requests (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX dsr_events_request ON dsr_events (request_id, at);

-- What is left of an erased contact: when, why, by whom, and whom the tenant must also ask
-- to erase (AI providers and MCP servers that received the data). No personal data.
CREATE TABLE erasure_tombstones (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    contact_id   uuid NOT NULL,
    request_id   uuid,
    reason       text NOT NULL CHECK (reason IN ('request', 'direct', 'retention', 'conversation')),
    erased_at    timestamptz NOT NULL,
    erased_by    text NOT NULL,
    recipients   jsonb NOT NULL DEFAULT '[]',
    removed      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX erasure_tombstones_tenant ON erasure_tombstones (tenant_id, erased_at DESC);

-- What each retention sweep removed (counts, never content).
CREATE TABLE retention_runs (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    at            timestamptz NOT NULL,
    messages      integer NOT NULL DEFAULT 0,
    media         integer NOT NULL DEFAULT 0,
    drafts        integer NOT NULL DEFAULT 0,
    contacts      integer NOT NULL DEFAULT 0
);
CREATE INDEX retention_runs_tenant ON retention_runs (tenant_id, at DESC);

-- Termination: an export window, then permanent deletion (global table columns).
ALTER TABLE tenants ADD COLUMN termination_requested_at timestamptz;
ALTER TABLE tenants ADD COLUMN terminate_at timestamptz;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['privacy_settings', 'dsr_requests', 'dsr_events', 'erasure_tombstones', 'retention_runs'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END $$;
-- Tombstones and request history are records of what happened: append-only for the app.
REVOKE UPDATE, DELETE ON erasure_tombstones, dsr_events FROM sigmaai_app;
