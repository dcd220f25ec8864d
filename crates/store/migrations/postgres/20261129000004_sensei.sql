-- Sensei's tables (issue 5): conversations gain their environment and first-message rollup, messages their
-- sentiment; failures, usage patterns, conversation embeddings, saved views, and the ingestion dedupe log.

-- A conversation is identified by (source, environment, external_id): the same id sent by two ingestion paths
-- (the JSON API and OTLP) or by two environments stays two conversations, and no API key can write into a
-- Mentor conversation (source 'mentorfy').
ALTER TABLE conversations ADD COLUMN environment TEXT NOT NULL DEFAULT 'production' CHECK (environment <> '');
-- Rollup: the earliest message's created_at; NULL until the first message.
ALTER TABLE conversations ADD COLUMN first_message_at TIMESTAMPTZ;
UPDATE conversations c SET first_message_at = (SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = c.id);
DROP INDEX idx_conversations_source_external;
CREATE UNIQUE INDEX idx_conversations_source_env_external ON conversations (source, environment, external_id);
CREATE INDEX idx_conversations_env_last_message ON conversations (environment, last_message_at);

-- VADER compound score of the message, written by the analysis pipeline; NULL until analysed.
ALTER TABLE messages ADD COLUMN sentiment_score DOUBLE PRECISION CHECK (sentiment_score BETWEEN -1 AND 1);

CREATE TABLE failures (
    id               UUID PRIMARY KEY,
    conversation_id  UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- The message the failure points at, when there is one.
    message_id       UUID REFERENCES messages (id) ON DELETE CASCADE,
    type             TEXT NOT NULL CHECK (type <> ''),
    severity         TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    -- A short excerpt of what triggered the detector.
    evidence         TEXT NOT NULL DEFAULT '',
    detector         TEXT NOT NULL CHECK (detector <> ''),
    detector_version INTEGER NOT NULL CHECK (detector_version >= 1),
    -- Stable per (detector, what it found): re-running the analysis updates rather than duplicates, and keeps
    -- a status an admin set.
    fingerprint      TEXT NOT NULL CHECK (fingerprint <> ''),
    status           TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ack', 'resolved')),
    details          JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX idx_failures_conversation_fingerprint ON failures (conversation_id, fingerprint);
CREATE INDEX idx_failures_type_created ON failures (type, created_at);
CREATE INDEX idx_failures_status_created ON failures (status, created_at);
CREATE INDEX idx_failures_created ON failures (created_at);

CREATE TABLE usage_patterns (
    id           UUID PRIMARY KEY,
    -- The pattern-analysis run that produced it.
    run_id       UUID NOT NULL,
    label        TEXT NOT NULL CHECK (label <> ''),
    keywords     JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(keywords) = 'array'),
    size         BIGINT NOT NULL CHECK (size >= 0),
    avg_health   DOUBLE PRECISION CHECK (avg_health BETWEEN 0 AND 100),
    failure_rate DOUBLE PRECISION CHECK (failure_rate BETWEEN 0 AND 1),
    -- Example conversation ids and excerpts.
    examples     JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(examples) = 'array'),
    -- How the label was made: 'ctfidf' or 'llm'.
    method       TEXT NOT NULL CHECK (method <> ''),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_usage_patterns_run ON usage_patterns (run_id);

CREATE TABLE pattern_conversations (
    pattern_id      UUID NOT NULL REFERENCES usage_patterns (id) ON DELETE CASCADE,
    conversation_id UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    similarity      DOUBLE PRECISION,
    PRIMARY KEY (pattern_id, conversation_id)
);
CREATE INDEX idx_pattern_conversations_conversation ON pattern_conversations (conversation_id);

CREATE TABLE conversation_embeddings (
    conversation_id UUID PRIMARY KEY REFERENCES conversations (id) ON DELETE CASCADE,
    model           TEXT NOT NULL CHECK (model <> ''),
    dims            INTEGER NOT NULL CHECK (dims > 0),
    -- dims little-endian f32 values.
    embedding       BYTEA NOT NULL CHECK (length(embedding) = 4 * dims),
    -- SHA-256 (hex) of the text embedded: unchanged text is not embedded again.
    text_hash       TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE saved_views (
    id         UUID PRIMARY KEY,
    name       TEXT NOT NULL CHECK (name <> ''),
    -- The dashboard page the view belongs to, e.g. 'conversations'.
    page       TEXT NOT NULL CHECK (page <> ''),
    filters    JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(filters) = 'object'),
    created_by TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_saved_views_page ON saved_views (page, name);

-- Client event ids of the batch ingestion API, kept at least 24 hours so a retried event is stored once.
CREATE TABLE ingest_events (
    event_id        TEXT PRIMARY KEY CHECK (event_id <> ''),
    api_key_id      UUID,
    conversation_id UUID,
    received_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX idx_ingest_events_received ON ingest_events (received_at);
