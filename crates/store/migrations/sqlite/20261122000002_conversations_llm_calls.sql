-- Sensei's conversations and messages (Mentor chats are conversations with source 'mentorfy'), and the log of
-- every LLM call. Types adapted for SQLite as in 000001: UUIDs as 16-byte BLOBs (v7, generated in Rust),
-- JSON as checked TEXT, timestamps as RFC 3339 UTC text with exactly 6 fractional digits (sortable as text).

CREATE TABLE conversations (
    id              BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    source          TEXT NOT NULL CHECK (source <> ''),
    external_id     TEXT NOT NULL CHECK (external_id <> ''),
    org_id          TEXT,
    agent_id        TEXT,
    user_id         TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'idle', 'closed')),
    -- Rollup: kept equal to the number of `messages` rows by the transaction that inserts each message.
    message_count   INTEGER NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    started_at      TEXT NOT NULL,
    last_message_at TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX idx_conversations_source_external ON conversations (source, external_id);
CREATE INDEX idx_conversations_last_message ON conversations (last_message_at);
CREATE INDEX idx_conversations_org_last_message ON conversations (org_id, last_message_at);

CREATE TABLE messages (
    id              BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    external_id     TEXT,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'aborted', 'error', 'superseded')),
    finish_reason   TEXT,
    input_tokens    INTEGER CHECK (input_tokens >= 0),
    output_tokens   INTEGER CHECK (output_tokens >= 0),
    latency_ms      INTEGER CHECK (latency_ms >= 0),
    ttft_ms         INTEGER CHECK (ttft_ms >= 0),
    metadata        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    created_at      TEXT NOT NULL
) STRICT;

-- The client's message id is unique within its conversation; a retried insert is a no-op (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX idx_messages_conversation_external ON messages (conversation_id, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX idx_messages_conversation_created ON messages (conversation_id, created_at, id);

-- One row per call to a model. No foreign keys: this is an append-only log written off the request path, in
-- any order relative to the session, conversation and message it names, and it must never be refused for that.
-- Erasing a session's data deletes its rows here explicitly (by session_id / conversation_id, both indexed).
CREATE TABLE llm_calls (
    id                 BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    trace_id           TEXT NOT NULL CHECK (length(trace_id) = 32 AND trace_id NOT GLOB '*[^0-9a-f]*'),
    span_id            TEXT NOT NULL CHECK (length(span_id) = 16 AND span_id NOT GLOB '*[^0-9a-f]*'),
    parent_span_id     TEXT CHECK (parent_span_id IS NULL OR (length(parent_span_id) = 16 AND parent_span_id NOT GLOB '*[^0-9a-f]*')),
    session_id         BLOB CHECK (session_id IS NULL OR length(session_id) = 16),
    conversation_id    BLOB CHECK (conversation_id IS NULL OR length(conversation_id) = 16),
    message_id         BLOB CHECK (message_id IS NULL OR length(message_id) = 16),
    org_id             TEXT,
    agent_id           TEXT,
    operation          TEXT NOT NULL CHECK (operation <> ''),
    provider           TEXT NOT NULL CHECK (provider <> ''),
    model              TEXT NOT NULL CHECK (model <> ''),
    response_model     TEXT,
    response_id        TEXT,
    stream             INTEGER NOT NULL CHECK (stream IN (0, 1)),
    parameters         TEXT NOT NULL CHECK (json_valid(parameters) AND json_type(parameters) = 'object'),
    input              TEXT NOT NULL CHECK (json_valid(input)),
    output             TEXT CHECK (output IS NULL OR json_valid(output)),
    input_tokens       INTEGER CHECK (input_tokens >= 0),
    output_tokens      INTEGER CHECK (output_tokens >= 0),
    cache_read_tokens  INTEGER CHECK (cache_read_tokens >= 0),
    cache_write_tokens INTEGER CHECK (cache_write_tokens >= 0),
    -- NULL means unknown (e.g. a model missing from the price table), never free: no default.
    cost_usd           REAL CHECK (cost_usd >= 0),
    latency_ms         INTEGER NOT NULL CHECK (latency_ms >= 0),
    ttft_ms            INTEGER CHECK (ttft_ms >= 0),
    attempts           INTEGER NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    status             TEXT NOT NULL CHECK (status IN ('ok', 'error', 'aborted')),
    error              TEXT,
    error_type         TEXT,
    finish_reason      TEXT,
    started_at         TEXT NOT NULL,
    created_at         TEXT NOT NULL
) STRICT;

CREATE INDEX idx_llm_calls_session_started ON llm_calls (session_id, started_at);
CREATE INDEX idx_llm_calls_conversation_started ON llm_calls (conversation_id, started_at);
CREATE INDEX idx_llm_calls_started ON llm_calls (started_at);
CREATE INDEX idx_llm_calls_agent_started ON llm_calls (agent_id, started_at);
