-- The conversation's text signature (text_signature.rs): a 1,024-bit set of the trigrams of its messages'
-- lower-cased text, which the conversation list's text search (`q`) tests before reading any message. Bits are
-- OR-ed in by the transaction that inserts messages. Conversations stored before this migration have no
-- signature yet (`text_sig_ready` false: the search treats them as candidates); the server computes theirs in
-- the background (`Store::rebuild_text_signatures`).
ALTER TABLE conversations
    ADD COLUMN text_sig_0 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_1 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_2 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_3 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_4 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_5 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_6 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_7 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_8 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_9 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_10 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_11 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_12 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_13 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_14 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_15 BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN text_sig_ready BOOLEAN NOT NULL DEFAULT true;

UPDATE conversations SET text_sig_ready = false;

CREATE INDEX idx_conversations_text_sig_pending ON conversations (id) WHERE NOT text_sig_ready;

-- An edited message may hold trigrams its conversation's signature lacks: the conversation goes back to "no
-- signature" (always a candidate) until the rebuild recomputes it. No store API edits content today.
CREATE FUNCTION trg_messages_text_sig() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations SET text_sig_ready = false WHERE id = NEW.conversation_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER trg_messages_text_sig AFTER UPDATE OF content ON messages
FOR EACH ROW WHEN (OLD.content IS DISTINCT FROM NEW.content) EXECUTE FUNCTION trg_messages_text_sig();
