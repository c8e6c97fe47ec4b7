-- Accounts, tenancy and sessions.
--
-- Global tables (no row-level security): tenants, users, sessions, recovery codes, hashed
-- invitation and reset tokens. Tenant-owned tables carry tenant_id with FORCEd RLS.

CREATE FUNCTION app_current_user() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.user_id', true), '')::uuid $$;

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'terminating', 'terminated')),
    plan        text NOT NULL DEFAULT 'starter',
    created_at  timestamptz NOT NULL
);

CREATE TABLE users (
    id                       uuid PRIMARY KEY,
    email                    text NOT NULL UNIQUE CHECK (email = lower(email)),
    name                     text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    password_hash            text NOT NULL,
    -- TOTP: the secret is sealed; last_step stops the same code being used twice.
    totp_secret              bytea,
    totp_enabled_at          timestamptz,
    totp_last_step           bigint,
    totp_failures            integer NOT NULL DEFAULT 0,
    totp_locked_until        timestamptz,
    language                 text,
    accepted_policy_version  text NOT NULL,
    accepted_policy_at       timestamptz NOT NULL,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL
);

-- Single-use recovery codes, stored hashed.
CREATE TABLE recovery_codes (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    code_hash   text NOT NULL,
    used_at     timestamptz
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- Server-side sessions: the short JWT in the cookie names one of these, and is only
-- re-issued while the row is valid (idle 30 min, absolute 12 h, not revoked).
CREATE TABLE sessions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    user_agent      text NOT NULL DEFAULT '',
    ip              text NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Pending second factor: after the password, before the TOTP code.
CREATE TABLE login_challenges (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    token_hash  text NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    attempts    integer NOT NULL DEFAULT 0
);

CREATE TABLE invitations (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    email       text NOT NULL CHECK (email = lower(email)),
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'reviewer', 'viewer')),
    token_hash  text NOT NULL UNIQUE,
    invited_by  uuid REFERENCES users ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX invitations_tenant ON invitations (tenant_id);

CREATE TABLE password_resets (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    tenant_id   uuid REFERENCES tenants ON DELETE CASCADE,
    token_hash  text NOT NULL UNIQUE,
    created_by  uuid REFERENCES users ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- Tenant-owned from here on: FORCE row-level security.

CREATE TABLE memberships (
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'reviewer', 'viewer')),
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
-- A tenant sees its members; a user (app.user_id) sees their own memberships, which is how
-- the portal lists the tenants one may switch to. Writes need the tenant.
CREATE POLICY memberships_read ON memberships FOR SELECT
    USING (tenant_id = app_current_tenant() OR user_id = app_current_user());
CREATE POLICY memberships_write ON memberships FOR ALL
    USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

CREATE TABLE tenant_settings (
    tenant_id       uuid PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,
    time_zone       text NOT NULL DEFAULT 'America/Sao_Paulo',
    language        text NOT NULL DEFAULT 'pt-BR' CHECK (language IN ('en', 'pt-BR')),
    -- {"mon": [["08:00","18:00"]], ...}
    business_hours  jsonb NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL
);
ALTER TABLE tenant_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenant_settings
    USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());

-- Append-only audit log; each row's hash covers the previous row's hash (tamper evidence).
CREATE TABLE audit_log (
    tenant_id   uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    seq         bigint NOT NULL,
    id          uuid NOT NULL UNIQUE,
    at          timestamptz NOT NULL,
    actor_id    uuid,
    actor_label text NOT NULL,
    action      text NOT NULL,
    subject     text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}',
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_log_action ON audit_log (tenant_id, action, at DESC);
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
    USING (tenant_id = app_current_tenant())
    WITH CHECK (tenant_id = app_current_tenant());
-- Append-only for the application: no UPDATE or DELETE.
REVOKE UPDATE, DELETE ON audit_log FROM sigmaai_app;
