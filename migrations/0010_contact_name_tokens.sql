-- The inbox name search, on an index row-level security lets the planner use.
--
-- The GIN index on contacts.name_tokens is never used by the application role: array
-- containment (`@>`) is not leakproof, so under RLS PostgreSQL must apply the tenant
-- policy first and cannot search the index with it — every search was a sequential scan
-- of the tenant's contacts (30 ms at 50,000 contacts, measured by `scripts/bench inbox`).
-- Text equality is leakproof: one row per (tenant, token, contact), kept in step with
-- contacts.name_tokens (still the source of truth) by a trigger, removed with the contact.
CREATE TABLE contact_name_tokens (
    tenant_id   uuid NOT NULL,
    token       text NOT NULL,
    contact_id  uuid NOT NULL,
    PRIMARY KEY (tenant_id, token, contact_id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX contact_name_tokens_contact ON contact_name_tokens (tenant_id, contact_id);

-- Backfill before row-level security applies to the owner (a migration has no tenant).
ALTER TABLE contacts NO FORCE ROW LEVEL SECURITY;
INSERT INTO contact_name_tokens (tenant_id, token, contact_id)
    SELECT DISTINCT c.tenant_id, t.token, c.id
    FROM contacts c, unnest(c.name_tokens) AS t(token);
ALTER TABLE contacts FORCE ROW LEVEL SECURITY;

ALTER TABLE contact_name_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_name_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contact_name_tokens
    USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
-- Written only by the trigger (as the writer of the contact row) and by cascades.
REVOKE UPDATE ON contact_name_tokens FROM sigmaai_app;

CREATE FUNCTION contacts_sync_name_tokens() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.name_tokens IS NOT DISTINCT FROM OLD.name_tokens THEN
            RETURN NULL;
        END IF;
        DELETE FROM contact_name_tokens WHERE tenant_id = OLD.tenant_id AND contact_id = OLD.id;
    END IF;
    INSERT INTO contact_name_tokens (tenant_id, token, contact_id)
        SELECT DISTINCT NEW.tenant_id, t.token, NEW.id FROM unnest(NEW.name_tokens) AS t(token);
    RETURN NULL;
END
$$;
CREATE TRIGGER contacts_name_tokens
    AFTER INSERT OR UPDATE OF name_tokens ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_sync_name_tokens();

DROP INDEX contacts_name_tokens;
