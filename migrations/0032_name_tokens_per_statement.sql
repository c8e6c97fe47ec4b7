-- Issue 22: a batch of new contacts writes its name tokens in one statement, not one trigger
-- call per contact. Ingestion inserts a whole group-commit batch's new people in one
-- `INSERT … SELECT FROM unnest`; the row-level trigger of 0010 ran its plpgsql (and its own
-- INSERT) once per row. An INSERT now fires one statement-level trigger over its transition
-- table, which inserts every new row's tokens at once. Same rows as before, for every writer
-- of contacts (ingestion, the portal, imports): (tenant, token, contact) for each distinct
-- token of each inserted contact. Updates of name_tokens keep the row-level trigger of 0010
-- (a column list cannot have a transition table; updates are rare on the hot path).
DROP TRIGGER contacts_name_tokens ON contacts;

CREATE FUNCTION contacts_insert_name_tokens() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = public, pg_temp
AS $$
BEGIN
    INSERT INTO contact_name_tokens (tenant_id, token, contact_id)
        SELECT DISTINCT n.tenant_id, t.token, n.id
        FROM new_rows n CROSS JOIN LATERAL unnest(n.name_tokens) AS t(token);
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_name_tokens_insert
    AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION contacts_insert_name_tokens();
CREATE TRIGGER contacts_name_tokens
    AFTER UPDATE OF name_tokens ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_sync_name_tokens();
