-- The conversation's text signature (text_signature.rs): a 1,024-bit set of the trigrams of its messages'
-- lower-cased text, which the conversation list's text search (`q`) tests before reading any message. Bits are
-- OR-ed in by the transaction that inserts messages. Conversations stored before this migration have no
-- signature yet (`text_sig_ready` false: the search treats them as candidates); the server computes theirs in
-- the background (`Store::rebuild_text_signatures`).
ALTER TABLE conversations ADD COLUMN text_sig_0 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_1 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_2 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_3 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_4 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_5 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_6 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_7 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_8 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_9 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_10 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_11 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_12 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_13 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_14 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_15 INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN text_sig_ready INTEGER NOT NULL DEFAULT 1 CHECK (text_sig_ready IN (0, 1));

UPDATE conversations SET text_sig_ready = 0;

CREATE INDEX idx_conversations_text_sig_pending ON conversations (id) WHERE text_sig_ready = 0;

-- An edited message may hold trigrams its conversation's signature lacks: the conversation goes back to "no
-- signature" (always a candidate) until the rebuild recomputes it. No store API edits content today.
CREATE TRIGGER messages_text_sig_update AFTER UPDATE OF content ON messages
WHEN OLD.content IS NOT NEW.content
BEGIN
    UPDATE conversations SET text_sig_ready = 0 WHERE id = NEW.conversation_id;
END;
