-- Foundation: privileges for the application role and the job queue.
--
-- The application role (sigmaai_app) is created outside migrations by `sigmaai migrate`
-- (roles are cluster-wide). Tables created by the owner from here on are readable and
-- writable by it; tables that must be append-only revoke what they need to.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO sigmaai_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO sigmaai_app;
GRANT USAGE ON SCHEMA public TO sigmaai_app;

-- Fail-closed tenant accessor for row-level security policies: NULL when unset or reset.
CREATE FUNCTION app_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid $$;

-- The job queue (global table: ids and kind only, never personal data).
-- A claim commits `locked_until` (the lease) and `attempts`; a crashed worker's job returns
-- when its lease expires. `dedupe_key` makes "one pending job per thing" an index rule.
CREATE TABLE jobs (
    id            uuid PRIMARY KEY,
    kind          text NOT NULL,
    tenant_id     uuid,
    subject_id    uuid,
    dedupe_key    text,
    run_at        timestamptz NOT NULL,
    locked_until  timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 8,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'dead')),
    last_error    text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    finished_at   timestamptz
);
CREATE UNIQUE INDEX jobs_one_pending_per_key ON jobs (dedupe_key)
    WHERE state = 'pending' AND dedupe_key IS NOT NULL;
CREATE INDEX jobs_due ON jobs (run_at) WHERE state = 'pending';
CREATE INDEX jobs_tenant ON jobs (tenant_id, state);
