-- Issue 19 (step 4): a portal page's chrome in one statement, one round trip.
--
-- Every page under /t/{slug}/ needs the tenant (by slug, never a terminated one), the
-- visitor's role there, the navigation badges (unread, waiting for review), the billing
-- banner, the month's AI drafts (the "drafting paused" banner), the tenant's time zone and
-- the visitor's other tenants for the switcher. That used to be ~15 round trips in five
-- transactions. This function answers all of it at once, called outside a transaction.
--
-- It runs as the caller (the application role, under row-level security). It scopes
-- itself: the SET clauses make `app.tenant_id` and `app.user_id` local to this call, so
-- the set_config below is undone when the function returns, whether or not the caller is in
-- a transaction. No row comes back for an unknown or terminated slug, or for a visitor who
-- is not a member (the portal answers 404 to all three alike). The counts use the partial
-- indexes of 0022 (drafts_waiting, conversations_unread).
CREATE FUNCTION portal_chrome(p_slug text, p_user uuid, p_month date)
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
BEGIN
    SELECT * INTO t FROM tenants WHERE tenants.slug = p_slug AND tenants.status <> 'terminated';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM set_config('app.tenant_id', t.id::text, true),
            set_config('app.user_id', p_user::text, true);
    RETURN QUERY
    SELECT t.id, t.slug, t.name, t.status, t.plan, m.role,
           (SELECT COALESCE(sum(c.unread_count), 0)::bigint FROM conversations c
             WHERE c.tenant_id = t.id AND c.status = 'open' AND c.unread_count > 0),
           (SELECT count(*) FROM drafts d
             WHERE d.tenant_id = t.id AND d.state IN ('pending', 'escalated')),
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
REVOKE ALL ON FUNCTION portal_chrome(text, uuid, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION portal_chrome(text, uuid, date) TO sigmaai_app;

-- The review queue's page: waiting drafts in the order the queue shows them (emergencies
-- first, then oldest), so a page of 50 is an index range read joined to its conversations
-- by key, not a sort of every waiting draft joined by a hash over all conversations (40 ms
-- with 11,000 waiting drafts among 50,000 conversations; see `scripts/bench portal`).
CREATE INDEX drafts_queue_order ON drafts (tenant_id, urgent DESC, created_at, id)
    WHERE state IN ('pending', 'escalated');
