-- E-mail: an outbox of messages to send, one row per message, sent by a `send_mail` job.
--
-- Global (no row-level security, and so no tenant_id column), like users and sessions: the
-- recipient is a user, who is not owned by one tenant, and the worker sends for every
-- tenant; a row is deleted with its user, and a terminated tenant's mail is already sent or
-- harmless (it names the tenant, no personal data of its contacts). A row holds
-- no credential: links with one-time tokens (invitations, password resets) are minted when
-- the job sends, so the outbox never contains a usable link.
CREATE TABLE mail_outbox (
    id               uuid PRIMARY KEY,
    -- One message per key: enqueueing the same key again is a no-op (no duplicates).
    idempotency_key  text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    user_id          uuid REFERENCES users ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('invitation', 'password_reset', 'new_device',
                                                   'dsr_due', 'review_waiting', 'billing_problem')),
    to_address       text NOT NULL CHECK (length(to_address) BETWEEN 3 AND 254),
    language         text NOT NULL CHECK (language IN ('en', 'pt-BR')),
    -- Non-secret template values (names, counts, ids the job looks up).
    params           jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    -- The Message-ID we sent it with (derived from the idempotency key).
    message_id       text
);
CREATE INDEX mail_outbox_unsent ON mail_outbox (created_at) WHERE sent_at IS NULL;

-- Devices a user has signed in from (a hash of the user agent): a sign-in from one not seen
-- before sends a "new sign-in" e-mail.
CREATE TABLE user_devices (
    user_id        uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    device_hash    text NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, device_hash)
);

-- A conversation whose draft waits for review longer than this (minutes) e-mails the
-- tenant's reviewers once per draft.
ALTER TABLE tenant_settings
    ADD COLUMN review_alert_minutes integer NOT NULL DEFAULT 60
        CHECK (review_alert_minutes BETWEEN 5 AND 10080);

-- A reset link the user asked for themselves ("forgot password", sent to their own
-- address) rather than one an admin issued: it names no tenant, and only such rows may.
ALTER TABLE password_resets ADD COLUMN self_service boolean NOT NULL DEFAULT false;
ALTER TABLE password_resets ADD CONSTRAINT password_resets_self_service_no_tenant
    CHECK (NOT self_service OR (tenant_id IS NULL AND created_by IS NULL));
