-- The key store: wrapped keys only, in a database of its own (`<db>_keys`).
--
-- Its backups are kept at most 7 days (the main database's up to 90): once the last key-store
-- backup holding a destroyed key has aged out, every copy of the data sealed under that key,
-- including those in database backups, is unreadable for good. Nothing here is readable
-- without the master key; nothing here is personal data (ids only).
--
-- The application role (sigmaai_app, created by `sigmaai migrate`) reads and writes keys;
-- tombstones are append-only for it.

GRANT USAGE ON SCHEMA public TO sigmaai_app;

-- L1: one key per tenant, versioned. Each version is wrapped (AES-256-GCM) by a master key,
-- named by its fingerprint; `sigmaai keys rotate --master` re-wraps under the current one.
CREATE TABLE tenant_keys (
    tenant_id       uuid NOT NULL,
    version         integer NOT NULL CHECK (version >= 1),
    master_key_id   text NOT NULL,
    wrapped         bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    rewrapped_at    timestamptz,
    PRIMARY KEY (tenant_id, version)
);
CREATE INDEX tenant_keys_master ON tenant_keys (master_key_id);

-- L2: one data key per subject: a contact, or the tenant itself (subject_id = the nil uuid)
-- for tenant-level secrets and the blind-index key. Wrapped by a version of the tenant key;
-- `sigmaai keys rotate --tenant` re-wraps them under a new version. A version still
-- wrapping data keys cannot be deleted (the foreign key), so retiring one is always safe.
CREATE TABLE data_keys (
    tenant_id           uuid NOT NULL,
    subject_id          uuid NOT NULL,
    key_id              uuid NOT NULL UNIQUE,
    key_version         integer NOT NULL DEFAULT 1,
    tenant_key_version  integer NOT NULL,
    wrapped             bytea NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, subject_id),
    FOREIGN KEY (tenant_id, tenant_key_version) REFERENCES tenant_keys (tenant_id, version)
);
CREATE INDEX data_keys_tenant_version ON data_keys (tenant_id, tenant_key_version);

-- Destroyed subjects (subject_id nil: the whole tenant). A destroyed key is never created
-- again for the same subject, so a late job cannot seal new data for an erased contact.
-- The deletion ledger (a file outside both databases) is the record that survives restores;
-- `sigmaai restore-replay` writes these rows back.
CREATE TABLE tombstones (
    tenant_id     uuid NOT NULL,
    subject_id    uuid NOT NULL,
    destroyed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, subject_id)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON tenant_keys, data_keys TO sigmaai_app;
GRANT SELECT, INSERT ON tombstones TO sigmaai_app;
