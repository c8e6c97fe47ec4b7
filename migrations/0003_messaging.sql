-- WhatsApp traffic: channels, contacts, conversations, messages.
--
-- Personal data (names, phone numbers, message bodies, media) is sealed (AES-256-GCM under
-- the contact's key, see src/crypto); what stays in clear is what the database must compare
-- or sort on: ids, timestamps, states, and keyed blind-index tokens for lookups and search.

-- Global: which tenant and channel a webhook URL belongs to (looked up before any tenant
-- context exists). The id in the URL is random; the secret is checked separately.
CREATE TABLE channel_routes (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    channel_id  uuid NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('evolution', 'meta', 'simulator'))
);

CREATE TABLE channels (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    route_id            uuid NOT NULL UNIQUE REFERENCES channel_routes ON DELETE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('evolution', 'meta', 'simulator')),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    -- Evolution: base URL + instance in config; API key and our webhook secret sealed.
    -- Meta: phone number id + WABA id in config; access token, app secret, verify token sealed.
    config              jsonb NOT NULL DEFAULT '{}',
    secrets_sealed      bytea,
    health              text NOT NULL DEFAULT 'unknown' CHECK (health IN ('unknown', 'connected', 'connecting', 'disconnected')),
    health_detail       text NOT NULL DEFAULT '',
    last_event_at       timestamptz,
    created_at          timestamptz NOT NULL,
    deleted_at          timestamptz,
    UNIQUE (tenant_id, id)
);

CREATE TABLE contacts (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    -- Blind indexes (per-tenant keyed HMAC): exact phone, WhatsApp LID, and name words.
    phone_index     text,
    lid_index       text,
    name_tokens     text[] NOT NULL DEFAULT '{}',
    phone_sealed    bytea,
    name_sealed     bytea,
    -- The profile staff keep (sealed JSON: notes), and tags (tenant vocabulary, not personal).
    profile_sealed  bytea,
    tags            text[] NOT NULL DEFAULT '{}',
    -- Privacy: restriction stops all processing; erased_at marks a crypto-deleted tombstone.
    restricted_at   timestamptz,
    erased_at       timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX contacts_phone ON contacts (tenant_id, phone_index) WHERE phone_index IS NOT NULL;
CREATE UNIQUE INDEX contacts_lid ON contacts (tenant_id, lid_index) WHERE lid_index IS NOT NULL;
CREATE INDEX contacts_name_tokens ON contacts USING gin (name_tokens);

CREATE TABLE conversations (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    channel_id        uuid NOT NULL,
    contact_id        uuid NOT NULL,
    -- The chat on the gateway: the contact, or a group (then contact_id is the last sender).
    chat_index        text NOT NULL,
    -- Where replies go (the gateway's chat address), sealed: under the contact's key for a
    -- one-to-one chat, under the tenant's key for a group.
    chat_sealed       bytea,
    is_group          boolean NOT NULL DEFAULT false,
    group_name_sealed bytea,
    status            text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    ownership         text NOT NULL DEFAULT 'ai' CHECK (ownership IN ('ai', 'human', 'paused')),
    policy_override   text CHECK (policy_override IN ('review_all', 'auto_send', 'off')),
    assigned_to       uuid REFERENCES users ON DELETE SET NULL,
    labels            text[] NOT NULL DEFAULT '{}',
    unread_count      integer NOT NULL DEFAULT 0,
    last_message_at   timestamptz NOT NULL,
    -- Start of WhatsApp's 24-hour customer-service window.
    last_inbound_at   timestamptz,
    created_at        timestamptz NOT NULL,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, channel_id, chat_index),
    FOREIGN KEY (tenant_id, channel_id) REFERENCES channels (tenant_id, id),
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);
-- The inbox: newest first, keyset-paginated on (last_message_at, id).
CREATE INDEX conversations_inbox ON conversations (tenant_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_inbox_status ON conversations (tenant_id, status, last_message_at DESC, id DESC);
CREATE INDEX conversations_contact ON conversations (tenant_id, contact_id);

CREATE TABLE messages (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    conversation_id     uuid NOT NULL,
    channel_id          uuid NOT NULL,
    -- Whose key seals this row (the end user of the conversation, or the group sender).
    contact_id          uuid NOT NULL,
    external_id         text,
    direction           text NOT NULL CHECK (direction IN ('in', 'out')),
    -- Who wrote an outbound message: a member, the AI (approved draft), or staff on the phone.
    author              text NOT NULL DEFAULT 'contact' CHECK (author IN ('contact', 'member', 'ai', 'phone', 'system')),
    author_user_id      uuid REFERENCES users ON DELETE SET NULL,
    kind                text NOT NULL,
    body_sealed         bytea,
    -- Media: metadata in clear, bytes sealed in object storage under media_key.
    media_kind          text,
    media_mime          text,
    media_size          bigint,
    media_key           text,
    media_source_sealed bytea,
    -- An outbound template: which one and its parameters (sealed), for the send job.
    template_sealed     bytea,
    media_state         text CHECK (media_state IN ('pending', 'stored', 'failed', 'deleted')),
    media_deleted_at    timestamptz,
    quoted_external_id  text,
    sender_sealed       bytea,
    status              text NOT NULL CHECK (status IN ('received', 'queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'unknown')),
    status_rank         smallint NOT NULL DEFAULT 0,
    error               text,
    sent_at             timestamptz NOT NULL,
    created_at          timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, contact_id) REFERENCES contacts (tenant_id, id) ON DELETE CASCADE
);
-- A gateway message is stored once per channel, however often it is delivered.
CREATE UNIQUE INDEX messages_external ON messages (tenant_id, channel_id, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX messages_thread ON messages (tenant_id, conversation_id, sent_at DESC, id DESC);

-- Notes staff keep on a conversation's contact are in contacts.profile_sealed; canned replies
-- are tenant vocabulary (not personal data) and stay in clear.
CREATE TABLE canned_replies (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 80),
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    created_at  timestamptz NOT NULL
);

-- Meta message templates approved for use outside the 24-hour window (synced).
CREATE TABLE message_templates (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    channel_id  uuid NOT NULL,
    name        text NOT NULL,
    language    text NOT NULL,
    category    text NOT NULL DEFAULT '',
    body        text NOT NULL DEFAULT '',
    param_count integer NOT NULL DEFAULT 0,
    status      text NOT NULL,
    synced_at   timestamptz NOT NULL,
    UNIQUE (tenant_id, channel_id, name, language)
);

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['channels', 'contacts', 'conversations', 'messages', 'canned_replies', 'message_templates'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I USING (tenant_id = app_current_tenant()) WITH CHECK (tenant_id = app_current_tenant())', t);
    END LOOP;
END $$;
