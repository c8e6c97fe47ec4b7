-- Issue 23, item 7: a member's saved inbox views ("my urgent", "waiting > 2 h").
-- A view stores filters only (never a search text, which could be a patient's name), as
-- the canonical query string the inbox builds from parsed values.
CREATE TABLE saved_views (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 60),
    query      text NOT NULL CHECK (char_length(query) <= 300),
    created_at timestamptz NOT NULL,
    UNIQUE (tenant_id, user_id, name)
);
ALTER TABLE saved_views ENABLE ROW LEVEL SECURITY;
ALTER TABLE saved_views FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON saved_views
    USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

-- Issue 23, item 10: how much reviewers change the AI's drafts, week by week. Words added
-- plus words removed by the edit (the word diff review::diff keeps), stored at approval.
ALTER TABLE drafts ADD COLUMN edit_words integer;
