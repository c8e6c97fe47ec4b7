-- Issue 18: each tenant's synonym list for knowledge retrieval, edited on the knowledge page
-- ("convênio = plano de saúde", one group per line). Business wording, not personal data.
CREATE TABLE knowledge_synonyms (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    body        text NOT NULL CHECK (length(body) <= 8000),
    updated_at  timestamptz NOT NULL
);
ALTER TABLE knowledge_synonyms ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge_synonyms FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON knowledge_synonyms
    USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant());
