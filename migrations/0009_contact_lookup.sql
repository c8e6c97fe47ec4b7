-- Ingestion looks a sender up before anything else, once per webhook delivery. Through a
-- tenant transaction that is four round trips (BEGIN, set tenant, SELECT, COMMIT); this
-- function does the same in one statement. It runs as the caller (row-level security
-- applies as always) and sets the tenant for its own statement only: outside a
-- transaction block the statement is its own transaction, and `set_config(…, true)` ends
-- with it. Inside a transaction already scoped to another tenant it refuses.
CREATE FUNCTION contacts_lookup(p_tenant uuid, p_phone_index text, p_lid_index text)
    RETURNS TABLE (id uuid, phone_index text, lid_index text, has_name boolean)
    LANGUAGE plpgsql
    SECURITY INVOKER
    SET search_path = public, pg_temp
AS $$
BEGIN
    IF coalesce(current_setting('app.tenant_id', true), '') NOT IN ('', p_tenant::text) THEN
        RAISE EXCEPTION 'contacts_lookup: this transaction belongs to another tenant';
    END IF;
    PERFORM set_config('app.tenant_id', p_tenant::text, true);
    -- Two branches, one per unique index: an OR of the two would be a scan of the
    -- tenant's contacts in this function's cached (generic) plan.
    RETURN QUERY
        SELECT u.id, u.phone_index, u.lid_index, u.has_name FROM (
            SELECT c.id, c.phone_index, c.lid_index, c.name_sealed IS NOT NULL AS has_name, c.created_at
            FROM contacts c
            WHERE c.tenant_id = p_tenant AND c.phone_index = p_phone_index AND c.erased_at IS NULL
            UNION
            SELECT c.id, c.phone_index, c.lid_index, c.name_sealed IS NOT NULL, c.created_at
            FROM contacts c
            WHERE c.tenant_id = p_tenant AND c.lid_index = p_lid_index AND c.erased_at IS NULL
        ) u
        ORDER BY u.created_at;
END
$$;
REVOKE ALL ON FUNCTION contacts_lookup(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION contacts_lookup(uuid, text, text) TO sigmaai_app;
