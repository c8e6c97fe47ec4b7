-- The tenant API (issue 21): API tokens and idempotency keys for sends.
--
-- A token is `sgm_<id>_<secret>`. Only SHA-256 of the 256-bit secret is stored; the id is
-- the lookup key and is not secret. Tokens are tenant data (a name, scopes, who made it), so
-- the table has FORCE row-level security like the others. A request arrives with no tenant
-- yet: `api_token_tenant(id)` (SECURITY DEFINER, owned by the migration role) tells which
-- tenant a token id belongs to and nothing else; the token itself is then read and checked
-- inside that tenant's scoped transaction.
CREATE TABLE api_tokens (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    secret_hash      bytea NOT NULL CHECK (length(secret_hash) = 32),
    scopes           text[] NOT NULL,
    created_by       uuid REFERENCES users ON DELETE SET NULL,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz,
    -- Written at most once a minute per token (not on every call).
    last_used_at     timestamptz,
    revoked_at       timestamptz,
    -- Requests per minute this token may make (counted in Redis, per token).
    rate_per_minute  integer NOT NULL DEFAULT 600 CHECK (rate_per_minute BETWEEN 1 AND 100000),
    UNIQUE (tenant_id, id)
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, created_at);

-- One stored response per Idempotency-Key and tenant: a replayed send returns it and sends
-- nothing. `request_hash` refuses the same key reused for a different request.
CREATE TABLE api_idempotency (
    tenant_id     uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    token_id      uuid,
    request_hash  bytea NOT NULL,
    status        smallint NOT NULL,
    response      jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX api_idempotency_age ON api_idempotency (created_at);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_tokens', 'api_idempotency'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END $$;

-- Which tenant a token id belongs to (NULL if none): the only thing readable about a token
-- before its tenant's scope is set.
CREATE FUNCTION api_token_tenant(token_id uuid) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = public, pg_temp
    AS $$ SELECT tenant_id FROM api_tokens WHERE id = token_id $$;
REVOKE ALL ON FUNCTION api_token_tenant(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_token_tenant(uuid) TO sigmaai_app;

-- A data-subject request opened through the API says so.
ALTER TABLE dsr_requests DROP CONSTRAINT dsr_requests_source_check;
ALTER TABLE dsr_requests ADD CONSTRAINT dsr_requests_source_check
    CHECK (source IN ('staff', 'keyword', 'api'));
