-- Issue 22: the portal's navigation badges and the inbox list stay cheap at 1M messages.
--
-- The badges count only what they show (drafts waiting for review; unread messages in
-- open conversations). A partial index on just those rows makes each count an index-only
-- scan of the waiting/unread rows of one tenant, instead of a scan of every draft or
-- conversation the tenant ever had.
CREATE INDEX drafts_waiting ON drafts (tenant_id) WHERE state IN ('pending', 'escalated');
CREATE INDEX conversations_unread ON conversations (tenant_id) INCLUDE (unread_count)
    WHERE status = 'open' AND unread_count > 0;

-- Keep the planner's row counts right as a tenant grows, without an operator's ANALYZE:
-- under row-level security the tenant predicate hides selectivity from the planner, so a
-- stale estimate (~300 conversations where there were ~50,000) picked scans over probes.
-- Analyze after 2 % of a table changed (the default is 10 %), vacuum after 5 % (index-only
-- scans need the visibility map), and keep finer statistics on the tenant column.
ALTER TABLE conversations SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE contacts SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE messages SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE drafts SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE conversations ALTER COLUMN tenant_id SET STATISTICS 1000;
ALTER TABLE contacts ALTER COLUMN tenant_id SET STATISTICS 1000;
ALTER TABLE messages ALTER COLUMN tenant_id SET STATISTICS 1000;
ALTER TABLE drafts ALTER COLUMN tenant_id SET STATISTICS 1000;
