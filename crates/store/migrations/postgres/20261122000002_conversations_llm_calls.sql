-- Sensei's conversations and messages (Mentor chats are conversations with source 'mentorfy'), and the log of
-- every LLM call. UUIDs are v7, generated in Rust (no column default).

CREATE TABLE conversations (
    id              UUID PRIMARY KEY,
    source          TEXT NOT NULL CHECK (source <> ''),
    external_id     TEXT NOT NULL CHECK (external_id <> ''),
    org_id          TEXT,
    agent_id        TEXT,
    user_id         TEXT,
    metadata        JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'idle', 'closed')),
    -- Rollup: kept equal to the number of `messages` rows by the transaction that inserts each message.
    message_count   BIGINT NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    started_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_message_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX idx_conversations_source_external ON conversations (source, external_id);
CREATE INDEX idx_conversations_last_message ON conversations (last_message_at);
CREATE INDEX idx_conversations_org_last_message ON conversations (org_id, last_message_at);

CREATE TABLE messages (
    id              UUID PRIMARY KEY,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    external_id     TEXT,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
    content         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'complete' CHECK (status IN ('complete', 'aborted', 'error', 'superseded')),
    finish_reason   TEXT,
    input_tokens    BIGINT CHECK (input_tokens >= 0),
    output_tokens   BIGINT CHECK (output_tokens >= 0),
    latency_ms      BIGINT CHECK (latency_ms >= 0),
    ttft_ms         BIGINT CHECK (ttft_ms >= 0),
    metadata        JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The client's message id is unique within its conversation; a retried insert is a no-op (ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX idx_messages_conversation_external ON messages (conversation_id, external_id)
    WHERE external_id IS NOT NULL;
CREATE INDEX idx_messages_conversation_created ON messages (conversation_id, created_at, id);

-- One row per call to a model. No foreign keys: this is an append-only log written off the request path, in
-- any order relative to the session, conversation and message it names, and it must never be refused for that.
-- Erasing a session's data deletes its rows here explicitly (by session_id / conversation_id, both indexed).
CREATE TABLE llm_calls (
    id                 UUID PRIMARY KEY,
    trace_id           TEXT NOT NULL CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    span_id            TEXT NOT NULL CHECK (span_id ~ '^[0-9a-f]{16}$'),
    parent_span_id     TEXT CHECK (parent_span_id ~ '^[0-9a-f]{16}$'),
    session_id         UUID,
    conversation_id    UUID,
    message_id         UUID,
    org_id             TEXT,
    agent_id           TEXT,
    operation          TEXT NOT NULL CHECK (operation <> ''),
    provider           TEXT NOT NULL CHECK (provider <> ''),
    model              TEXT NOT NULL CHECK (model <> ''),
    response_model     TEXT,
    response_id        TEXT,
    stream             BOOLEAN NOT NULL,
    parameters         JSONB NOT NULL CHECK (jsonb_typeof(parameters) = 'object'),
    input              JSONB NOT NULL,
    output             JSONB,
    input_tokens       BIGINT CHECK (input_tokens >= 0),
    output_tokens      BIGINT CHECK (output_tokens >= 0),
    cache_read_tokens  BIGINT CHECK (cache_read_tokens >= 0),
    cache_write_tokens BIGINT CHECK (cache_write_tokens >= 0),
    -- NULL means unknown (e.g. a model missing from the price table), never free: no default.
    cost_usd           DOUBLE PRECISION CHECK (cost_usd >= 0 AND cost_usd <> 'NaN'::float8 AND cost_usd <> 'Infinity'::float8),
    latency_ms         BIGINT NOT NULL CHECK (latency_ms >= 0),
    ttft_ms            BIGINT CHECK (ttft_ms >= 0),
    attempts           BIGINT NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    status             TEXT NOT NULL CHECK (status IN ('ok', 'error', 'aborted')),
    error              TEXT,
    error_type         TEXT,
    finish_reason      TEXT,
    started_at         TIMESTAMPTZ NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_llm_calls_session_started ON llm_calls (session_id, started_at);
CREATE INDEX idx_llm_calls_conversation_started ON llm_calls (conversation_id, started_at);
CREATE INDEX idx_llm_calls_started ON llm_calls (started_at);
CREATE INDEX idx_llm_calls_agent_started ON llm_calls (agent_id, started_at);
