-- Text search for the conversation list's `q` (conversation_list.rs; docs/PERFORMANCE.md, "Text search at 100,000
-- conversations"). `q` keeps its meaning, `lower(content) LIKE '%text%'` on some message: this index only finds the
-- candidate messages of a text of 3 or more characters, and the list re-tests each with that LIKE.
--
-- An FTS5 table over messages.content with the trigram tokenizer (case-folded): the phrase query `"text"` matches
-- the messages whose folded content contains the folded text, a superset of the LIKE's matches. External content
-- (`content='messages'`): the text is stored once, in messages; FTS5 keeps only the index, keyed by the rowid of
-- messages (an ordinary rowid table). The triggers below keep it in step with every insert, edit and delete
-- (including the cascade from a deleted conversation). A VACUUM may renumber rowids of a table without an INTEGER
-- PRIMARY KEY: after one, run `INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')`.
CREATE VIRTUAL TABLE messages_fts USING fts5 (
    content,
    content = 'messages',
    content_rowid = 'rowid',
    tokenize = 'trigram'
);

INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.content);
END;

-- The other half of `q`, `external_id = text`: the unique key leads with source and environment, so without this
-- index that branch reads every conversation.
CREATE INDEX idx_conversations_external_id ON conversations (external_id);
