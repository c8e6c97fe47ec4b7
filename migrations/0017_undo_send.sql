-- Undo send: an approved draft's reply waits this many seconds before its send job runs,
-- and staff can take the approval back until then (0: send at once).
ALTER TABLE ai_settings
    ADD COLUMN undo_seconds integer NOT NULL DEFAULT 10 CHECK (undo_seconds BETWEEN 0 AND 60);
