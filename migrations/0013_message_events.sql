-- WhatsApp fidelity (issue 16): what happens to a message after it arrived.
--
-- extra_sealed     sealed JSON beside the body: reactions, poll votes, the id of a chosen
--                  button or list row, a form's answers, an order's items, the ad that
--                  brought the customer. Sealed like the body (AAD messages/extra/<id>).
-- original_sealed  the text a message had before its first edit (AAD messages/original).
-- edited_at        when the sender last edited it ("edited" marker).
-- deleted_at       "delete for everyone": body, original, extra and media are dropped at
--                  once; the row stays as a tombstone so the thread shows "message deleted".
ALTER TABLE messages
    ADD COLUMN extra_sealed    bytea,
    ADD COLUMN original_sealed bytea,
    ADD COLUMN edited_at       timestamptz,
    ADD COLUMN deleted_at      timestamptz;

-- A media file the gateway will never give us (a final 4xx): staff are told it is gone.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_media_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_media_state_check
    CHECK (media_state IN ('pending', 'stored', 'failed', 'gone', 'deleted'));

-- A draft written while the customer's message said something else: the message it answers
-- (or one before it) was later edited or deleted, so a reviewer must look again.
ALTER TABLE drafts ADD COLUMN source_changed text CHECK (source_changed IN ('edited', 'deleted'));
