-- Issue 18: an emergency ("meu cachorro foi atropelado") escalates flagged urgent, so staff
-- see it first in the review queue and marked in the inbox. Both rows are tenant-owned and
-- already under RLS; the flags need no policy of their own.
ALTER TABLE drafts ADD COLUMN urgent boolean NOT NULL DEFAULT false;
ALTER TABLE conversations ADD COLUMN urgent boolean NOT NULL DEFAULT false;
