-- Issue 22: the navigation badges (unread messages in open conversations, drafts waiting for
-- review) maintained, not counted on every page. `portal_chrome` used to count them: an
-- index-only scan of every unread conversation (29,000 rows, ~2 ms) and of every waiting
-- draft (11,000, ~0.8 ms) of the tenant, on every portal page.
--
-- Ingest is hot, so no single counter row per tenant that every batch would update and lock
-- until it commits (that would serialise the writers). Instead each statement that changes
-- what a badge counts appends ONE delta row per tenant (statement-level triggers over the
-- transition tables: a batch of 50 messages is one row, not 50), and nobody ever waits for a
-- lock to do it. A badge is the sum of its tenant's rows. Now and then (one delta in
-- COMPACT_EVERY) the writer folds the tenant's committed rows into one, under a
-- try-lock: a second folder skips instead of waiting, and as only the lock's holder deletes
-- rows, the fold never waits either. A fold deletes and inserts in the writer's transaction,
-- so a reader's snapshot sees either all the old rows or their sum, never both.
--
-- What counts is exactly what the counts counted:
--   unread  = sum(unread_count) of conversations WHERE status = 'open' AND unread_count > 0
--   waiting = count(*) of drafts WHERE state IN ('pending', 'escalated')
-- Deletes count too (erasure, retention, a tenant's termination), by cascade or not.
CREATE TABLE portal_counter_deltas (
    tenant_id uuid NOT NULL,
    unread    bigint NOT NULL DEFAULT 0,
    waiting   bigint NOT NULL DEFAULT 0
);
CREATE INDEX portal_counter_deltas_tenant ON portal_counter_deltas (tenant_id)
    INCLUDE (unread, waiting);
-- Small and churned: vacuum it often so its index-only sums stay index-only.
ALTER TABLE portal_counter_deltas SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
                                       autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);
-- The application reads its tenant's rows (FORCEd row-level security like every tenant
-- table); only the triggers below write, as the owner (SECURITY DEFINER), who may write any
-- tenant's rows: a trigger can fire where no tenant is set (a migration, the cascade of a
-- tenant's deletion, a sweep across tenants).
ALTER TABLE portal_counter_deltas ENABLE ROW LEVEL SECURITY;
ALTER TABLE portal_counter_deltas FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON portal_counter_deltas
    USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
DO $$ BEGIN
    EXECUTE format('CREATE POLICY counters_writer ON portal_counter_deltas TO %I USING (true) WITH CHECK (true)',
                   current_user);
END $$;
REVOKE ALL ON portal_counter_deltas FROM sigmaai_app;
GRANT SELECT ON portal_counter_deltas TO sigmaai_app;

-- Appends the deltas (tenant, unread, waiting), folding a tenant's rows now and then.
CREATE FUNCTION portal_counters_add(p_tenant uuid[], p_unread bigint[], p_waiting bigint[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    t uuid;
BEGIN
    INSERT INTO portal_counter_deltas (tenant_id, unread, waiting)
        SELECT d.t, d.u, d.w FROM unnest(p_tenant, p_unread, p_waiting) AS d(t, u, w)
        WHERE d.u <> 0 OR d.w <> 0;
    -- COMPACT_EVERY = 32: a badge sums ~32 rows on average.
    FOREACH t IN ARRAY p_tenant LOOP
        IF random() < 1.0 / 32 AND pg_try_advisory_xact_lock(hashtextextended(t::text, 2231)) THEN
            WITH gone AS (
                DELETE FROM portal_counter_deltas WHERE tenant_id = t RETURNING unread, waiting
            )
            INSERT INTO portal_counter_deltas (tenant_id, unread, waiting)
                SELECT t, sum(unread), sum(waiting) FROM gone HAVING count(*) > 0;
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION portal_counters_add(uuid[], bigint[], bigint[]) FROM PUBLIC;

-- Conversations: what each row adds to the unread badge, before and after.
CREATE FUNCTION conversations_count_unread() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    ts uuid[];
    us bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(tenant_id), array_agg(n) INTO ts, us FROM (
            SELECT tenant_id, sum(unread_count)::bigint AS n FROM new_rows
            WHERE status = 'open' AND unread_count > 0 GROUP BY tenant_id) s;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(tenant_id), array_agg(n) INTO ts, us FROM (
            SELECT tenant_id, -sum(unread_count)::bigint AS n FROM old_rows
            WHERE status = 'open' AND unread_count > 0 GROUP BY tenant_id) s;
    ELSE
        SELECT array_agg(tenant_id), array_agg(n) INTO ts, us FROM (
            SELECT tenant_id, sum(n)::bigint AS n FROM (
                SELECT tenant_id, unread_count AS n FROM new_rows
                 WHERE status = 'open' AND unread_count > 0
                UNION ALL
                SELECT tenant_id, -unread_count FROM old_rows
                 WHERE status = 'open' AND unread_count > 0) x
            GROUP BY tenant_id) s;
    END IF;
    IF ts IS NOT NULL THEN
        PERFORM portal_counters_add(ts, us, array_fill(0::bigint, ARRAY[cardinality(ts)]));
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER conversations_unread_ins AFTER INSERT ON conversations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conversations_count_unread();
CREATE TRIGGER conversations_unread_upd AFTER UPDATE ON conversations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conversations_count_unread();
CREATE TRIGGER conversations_unread_del AFTER DELETE ON conversations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION conversations_count_unread();

-- Drafts: what each row adds to the waiting badge, before and after.
CREATE FUNCTION drafts_count_waiting() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    ts uuid[];
    ws bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(tenant_id), array_agg(n) INTO ts, ws FROM (
            SELECT tenant_id, count(*)::bigint AS n FROM new_rows
            WHERE state IN ('pending', 'escalated') GROUP BY tenant_id) s;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(tenant_id), array_agg(n) INTO ts, ws FROM (
            SELECT tenant_id, -count(*)::bigint AS n FROM old_rows
            WHERE state IN ('pending', 'escalated') GROUP BY tenant_id) s;
    ELSE
        SELECT array_agg(tenant_id), array_agg(n) INTO ts, ws FROM (
            SELECT tenant_id, sum(n)::bigint AS n FROM (
                SELECT tenant_id, 1 AS n FROM new_rows WHERE state IN ('pending', 'escalated')
                UNION ALL
                SELECT tenant_id, -1 FROM old_rows WHERE state IN ('pending', 'escalated')) x
            GROUP BY tenant_id) s;
    END IF;
    IF ts IS NOT NULL THEN
        PERFORM portal_counters_add(ts, array_fill(0::bigint, ARRAY[cardinality(ts)]), ws);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER drafts_waiting_ins AFTER INSERT ON drafts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION drafts_count_waiting();
CREATE TRIGGER drafts_waiting_upd AFTER UPDATE ON drafts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION drafts_count_waiting();
CREATE TRIGGER drafts_waiting_del AFTER DELETE ON drafts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION drafts_count_waiting();

-- Backfill (the triggers exist and hold their tables' locks from here to the end of the
-- migration, so no change slips between the count and the first delta). Before row-level
-- security applies to the owner: a migration has no tenant.
ALTER TABLE conversations NO FORCE ROW LEVEL SECURITY;
ALTER TABLE drafts NO FORCE ROW LEVEL SECURITY;
INSERT INTO portal_counter_deltas (tenant_id, unread, waiting)
    SELECT tenant_id, sum(u), sum(w) FROM (
        SELECT tenant_id, unread_count::bigint AS u, 0::bigint AS w FROM conversations
         WHERE status = 'open' AND unread_count > 0
        UNION ALL
        SELECT tenant_id, 0, 1 FROM drafts WHERE state IN ('pending', 'escalated')) x
    GROUP BY tenant_id;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
ALTER TABLE drafts FORCE ROW LEVEL SECURITY;

-- The page frame reads the badges from the deltas: a few dozen rows, not every unread
-- conversation and waiting draft. Otherwise as 0029.
CREATE OR REPLACE FUNCTION portal_chrome(p_slug text, p_user uuid, p_month date)
RETURNS TABLE (
    tenant_id uuid,
    slug text,
    name text,
    status text,
    plan text,
    role text,
    unread bigint,
    waiting bigint,
    billing_status text,
    grace_until timestamptz,
    drafts_this_month bigint,
    time_zone text,
    my_tenants jsonb
)
LANGUAGE plpgsql VOLATILE
SET search_path = public, pg_temp
SET app.tenant_id = ''
SET app.user_id = ''
AS $$
#variable_conflict use_column
DECLARE
    t tenants%ROWTYPE;
    n_unread bigint;
    n_waiting bigint;
BEGIN
    SELECT * INTO t FROM tenants WHERE tenants.slug = p_slug AND tenants.status <> 'terminated';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM set_config('app.tenant_id', t.id::text, true),
            set_config('app.user_id', p_user::text, true);
    SELECT COALESCE(sum(d.unread), 0)::bigint, COALESCE(sum(d.waiting), 0)::bigint
      INTO n_unread, n_waiting
      FROM portal_counter_deltas d WHERE d.tenant_id = t.id;
    RETURN QUERY
    SELECT t.id, t.slug, t.name, t.status, t.plan, m.role,
           n_unread,
           n_waiting,
           t.billing_status, t.grace_until,
           (SELECT COALESCE(sum(u.drafts), 0)::bigint FROM ai_usage u
             WHERE u.tenant_id = t.id AND u.day >= p_month),
           (SELECT s.time_zone FROM tenant_settings s WHERE s.tenant_id = t.id),
           (SELECT COALESCE(jsonb_agg(jsonb_build_object('slug', o.slug, 'name', o.name, 'role', om.role)
                                      ORDER BY o.name), '[]'::jsonb)
              FROM memberships om JOIN tenants o ON o.id = om.tenant_id
             WHERE om.user_id = p_user AND o.status <> 'terminated')
      FROM memberships m
     WHERE m.tenant_id = t.id AND m.user_id = p_user;
END
$$;
