-- Sensei's tables (issue 5): conversations gain their environment and first-message rollup, messages their
-- sentiment; failures, usage patterns, conversation embeddings, saved views, and the ingestion dedupe log.
-- Types as in 000001: UUIDs as 16-byte BLOBs, JSON as checked TEXT, timestamps as RFC 3339 UTC text with exactly
-- 6 fractional digits.

-- A conversation is identified by (source, environment, external_id): the same id sent by two ingestion paths
-- (the JSON API and OTLP) or by two environments stays two conversations, and no API key can write into a
-- Mentor conversation (source 'mentorfy').
ALTER TABLE conversations ADD COLUMN environment TEXT NOT NULL DEFAULT 'production' CHECK (environment <> '');
-- Rollup: the earliest message's created_at; NULL until the first message.
ALTER TABLE conversations ADD COLUMN first_message_at TEXT;
UPDATE conversations SET first_message_at = (SELECT min(m.created_at) FROM messages m WHERE m.conversation_id = conversations.id);
DROP INDEX idx_conversations_source_external;
CREATE UNIQUE INDEX idx_conversations_source_env_external ON conversations (source, environment, external_id);
CREATE INDEX idx_conversations_env_last_message ON conversations (environment, last_message_at);

-- VADER compound score of the message, written by the analysis pipeline; NULL until analysed.
ALTER TABLE messages ADD COLUMN sentiment_score REAL CHECK (sentiment_score BETWEEN -1 AND 1);

CREATE TABLE failures (
    id               BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    conversation_id  BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- The message the failure points at, when there is one.
    message_id       BLOB REFERENCES messages (id) ON DELETE CASCADE,
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
    details          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details) AND json_type(details) = 'object'),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX idx_failures_conversation_fingerprint ON failures (conversation_id, fingerprint);
CREATE INDEX idx_failures_type_created ON failures (type, created_at);
CREATE INDEX idx_failures_status_created ON failures (status, created_at);
CREATE INDEX idx_failures_created ON failures (created_at);

CREATE TABLE usage_patterns (
    id           BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    -- The pattern-analysis run that produced it.
    run_id       BLOB NOT NULL CHECK (length(run_id) = 16),
    label        TEXT NOT NULL CHECK (label <> ''),
    keywords     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(keywords) AND json_type(keywords) = 'array'),
    size         INTEGER NOT NULL CHECK (size >= 0),
    avg_health   REAL CHECK (avg_health BETWEEN 0 AND 100),
    failure_rate REAL CHECK (failure_rate BETWEEN 0 AND 1),
    -- Example conversation ids and excerpts.
    examples     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(examples) AND json_type(examples) = 'array'),
    -- How the label was made: 'ctfidf' or 'llm'.
    method       TEXT NOT NULL CHECK (method <> ''),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
) STRICT;
CREATE INDEX idx_usage_patterns_run ON usage_patterns (run_id);

CREATE TABLE pattern_conversations (
    pattern_id      BLOB NOT NULL REFERENCES usage_patterns (id) ON DELETE CASCADE,
    conversation_id BLOB NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    similarity      REAL,
    PRIMARY KEY (pattern_id, conversation_id)
) STRICT;
CREATE INDEX idx_pattern_conversations_conversation ON pattern_conversations (conversation_id);

CREATE TABLE conversation_embeddings (
    conversation_id BLOB PRIMARY KEY NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    model           TEXT NOT NULL CHECK (model <> ''),
    dims            INTEGER NOT NULL CHECK (dims > 0),
    -- dims little-endian f32 values.
    embedding       BLOB NOT NULL CHECK (length(embedding) = 4 * dims),
    -- SHA-256 (hex) of the text embedded: unchanged text is not embedded again.
    text_hash       TEXT NOT NULL,
    created_at      TEXT NOT NULL
) STRICT;

CREATE TABLE saved_views (
    id         BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    name       TEXT NOT NULL CHECK (name <> ''),
    -- The dashboard page the view belongs to, e.g. 'conversations'.
    page       TEXT NOT NULL CHECK (page <> ''),
    filters    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(filters) AND json_type(filters) = 'object'),
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE INDEX idx_saved_views_page ON saved_views (page, name);

-- Client event ids of the batch ingestion API, kept at least 24 hours so a retried event is stored once.
CREATE TABLE ingest_events (
    event_id        TEXT PRIMARY KEY NOT NULL CHECK (event_id <> ''),
    api_key_id      BLOB,
    conversation_id BLOB,
    received_at     TEXT NOT NULL
) STRICT;
CREATE INDEX idx_ingest_events_received ON ingest_events (received_at);
