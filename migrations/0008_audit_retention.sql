-- Audit-log retention (issue 8): a per-tenant window, enforced by the privacy sweep, and
-- signed checkpoints so that what is left of a pruned chain still verifies.
--
-- The app role cannot DELETE audit rows (0002). Pruning goes through audit_prune() below,
-- which runs as the migration owner, only for the transaction's tenant, only a prefix of the
-- chain that leaves the newest entry, and only entries older than the tenant's window. It
-- stores a checkpoint (the hash of the last dropped entry) whose signature the application
-- computes with a key derived from the tenant's key in the key store: someone with write
-- access to this database alone can delete entries or insert checkpoints, but cannot sign
-- one, so verification reports it.

-- NULL: kept for the life of the account (the default). A security record is never
-- prunable to days: at least a year, at most ten.
ALTER TABLE privacy_settings
    ADD COLUMN audit_days integer CHECK (audit_days BETWEEN 365 AND 3650);

-- What each sweep removed from the audit log (a count, like the other columns).
ALTER TABLE retention_runs
    ADD COLUMN audit_entries integer NOT NULL DEFAULT 0;

CREATE TABLE audit_checkpoints (
    tenant_id    uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    -- Entries 1..through_seq are gone; entry through_seq + 1 is the first one kept.
    through_seq  bigint NOT NULL CHECK (through_seq > 0),
    -- When the last dropped entry was written (what the audit page shows).
    through_at   timestamptz NOT NULL,
    -- The last dropped entry's hash: the first kept entry's prev_hash.
    head_hash    bytea NOT NULL CHECK (length(head_hash) = 32),
    -- How many entries this prune dropped.
    dropped      bigint NOT NULL CHECK (dropped > 0),
    at           timestamptz NOT NULL,
    -- HMAC-SHA256 over the fields above (see db::audit::checkpoint_message).
    signature    bytea NOT NULL,
    PRIMARY KEY (tenant_id, through_seq)
);
ALTER TABLE audit_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_checkpoints
    USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
-- The app reads checkpoints; only audit_prune() writes them.
REVOKE INSERT, UPDATE, DELETE ON audit_checkpoints FROM sigmaai_app;

-- Drops the current tenant's entries 1..p_through_seq and records the signed checkpoint, in
-- the caller's transaction. Every argument is checked against the rows (an exception rolls
-- the whole transaction back); the signature can only be checked by the application.
-- Returns the number of entries deleted.
CREATE FUNCTION audit_prune(
    p_through_seq  bigint,
    p_head_hash    bytea,
    p_through_at   timestamptz,
    p_dropped      bigint,
    p_at           timestamptz,
    p_signature    bytea
) RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_tenant   uuid := public.app_current_tenant();
    v_days     integer;
    v_first    bigint;
    v_newest   bigint;
    v_deleted  bigint;
BEGIN
    IF v_tenant IS NULL THEN
        RAISE EXCEPTION 'audit_prune: no tenant is set for this transaction';
    END IF;
    -- The same per-tenant lock db::audit::record takes: one writer per chain.
    PERFORM pg_advisory_xact_lock(hashtextextended(v_tenant::text, 7302));
    SELECT s.audit_days INTO v_days FROM public.privacy_settings s WHERE s.tenant_id = v_tenant;
    IF v_days IS NULL THEN
        RAISE EXCEPTION 'audit_prune: this tenant keeps its audit log for the life of the account';
    END IF;
    SELECT min(a.seq), max(a.seq) INTO v_first, v_newest
        FROM public.audit_log a WHERE a.tenant_id = v_tenant;
    IF v_first IS NULL OR p_through_seq < v_first OR p_through_seq >= v_newest THEN
        RAISE EXCEPTION 'audit_prune: entries up to % are not a prefix that keeps the newest entry', p_through_seq;
    END IF;
    IF p_dropped <> p_through_seq - v_first + 1 THEN
        RAISE EXCEPTION 'audit_prune: % entries claimed, % in range', p_dropped, p_through_seq - v_first + 1;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM public.audit_log a
        WHERE a.tenant_id = v_tenant AND a.seq = p_through_seq
          AND a.hash = p_head_hash AND a.at = p_through_at
    ) THEN
        RAISE EXCEPTION 'audit_prune: the checkpoint does not match entry %', p_through_seq;
    END IF;
    -- Hours, not days: exact whatever the session's time zone (no DST shifts).
    IF EXISTS (
        SELECT 1 FROM public.audit_log a
        WHERE a.tenant_id = v_tenant AND a.seq <= p_through_seq
          AND a.at >= p_at - v_days * interval '24 hours'
    ) THEN
        RAISE EXCEPTION 'audit_prune: entries up to % are not all older than % days', p_through_seq, v_days;
    END IF;
    DELETE FROM public.audit_log a WHERE a.tenant_id = v_tenant AND a.seq <= p_through_seq;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    IF v_deleted <> p_dropped THEN
        RAISE EXCEPTION 'audit_prune: % entries claimed, % deleted (the chain has a gap)', p_dropped, v_deleted;
    END IF;
    INSERT INTO public.audit_checkpoints
        (tenant_id, through_seq, through_at, head_hash, dropped, at, signature)
        VALUES (v_tenant, p_through_seq, p_through_at, p_head_hash, p_dropped, p_at, p_signature);
    RETURN v_deleted;
END
$$;
REVOKE ALL ON FUNCTION audit_prune(bigint, bytea, timestamptz, bigint, timestamptz, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_prune(bigint, bytea, timestamptz, bigint, timestamptz, bytea) TO sigmaai_app;
