-- Issue 22: the conversation page at 1M messages. Two of its statements read every draft of
-- the tenant (sequential scans, 17 ms and 5 ms with 124,000 drafts; the whole page ran at
-- ~80-100 pages/s on two cores because of them):
--   * a conversation's latest draft (`WHERE conversation_id = $1 ORDER BY created_at DESC
--     LIMIT 1`, ties by id), and the worker's own per-conversation draft reads and supersede updates;
--   * the drafts behind messages the AI sent (`WHERE sent_message_id = ANY($1)`), and the
--     draft of one sent message.
-- Under row-level security every query also carries the tenant, so both lead with it.
CREATE INDEX drafts_conversation ON drafts (tenant_id, conversation_id, created_at DESC, id DESC);
CREATE INDEX drafts_sent_message ON drafts (tenant_id, sent_message_id)
    WHERE sent_message_id IS NOT NULL;
-- The reply box's canned replies: the tenant's own, in title order (the table had only its
-- primary key, so every page read every tenant's canned replies).
CREATE INDEX canned_replies_tenant ON canned_replies (tenant_id, title);
