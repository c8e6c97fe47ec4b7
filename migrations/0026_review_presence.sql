-- Issue 23, item 9: collision safety in the review workspace.
--
-- Who has a conversation open right now, and whether they are editing its draft. A row is
-- "here" while its heartbeat is fresh (the page renews it every 20 s; 45 s without one and
-- it is gone). Approving or rejecting a draft that someone else is editing is refused while
-- their row is fresh, so two reviewers never send two different answers to one patient.
-- Staff data only (no patient data), and nothing here must survive a crash: UNLOGGED keeps
-- the heartbeats out of the WAL.
CREATE UNLOGGED TABLE review_presence (
    tenant_id       uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    conversation_id uuid NOT NULL,
    user_id         uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    -- The draft being edited, when `editing`.
    draft_id        uuid,
    editing         boolean NOT NULL DEFAULT false,
    seen_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id, user_id),
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX review_presence_draft ON review_presence (tenant_id, draft_id) WHERE editing;
ALTER TABLE review_presence ENABLE ROW LEVEL SECURITY;
ALTER TABLE review_presence FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON review_presence
    USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

-- Opening an unassigned conversation assigns it to the reviewer who opened it (as Front and
-- Chatwoot do), unless the tenant turns it off.
ALTER TABLE tenant_settings ADD COLUMN assign_on_open boolean NOT NULL DEFAULT true;

-- "Regenerate" in the reply box: a reviewer can set a draft aside and have the AI write the
-- same turn again. One live draft per turn still holds; drafts set aside do not count.
DROP INDEX drafts_one_per_turn;
CREATE UNIQUE INDEX drafts_one_per_turn ON drafts (tenant_id, reply_to_message_id)
    WHERE state <> 'superseded';
