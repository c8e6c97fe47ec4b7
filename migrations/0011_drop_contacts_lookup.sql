-- Ingestion now looks up a whole batch's senders inside its group-commit transaction
-- (`contacts::find_many`), where the tenant is already set; the one-statement lookup that
-- set the tenant itself has no caller left, and a function that switches tenants is
-- surface we would rather not keep.
DROP FUNCTION contacts_lookup(uuid, text, text);
