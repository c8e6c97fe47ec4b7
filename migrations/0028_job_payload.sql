-- Typed jobs (issue #19): a job's payload fields beyond `tenant_id` / `subject_id` (which
-- stay columns). NULL for every kind whose payload is just those two, and for rows queued
-- before this column existed; the worker reads such a row as `{tenant_id, subject_id}`.
ALTER TABLE jobs ADD COLUMN payload jsonb;
