-- The embedded memory engine's rows: one natural-language memory per row, in a container (`{org}-{session}`).
-- UUIDs are v7, generated in Rust (no column default). The embedding is the model's vector as little-endian f32
-- bytes, computed once on write so search never re-embeds documents; NULL without a model.

CREATE TABLE memories (
    id          UUID PRIMARY KEY,
    container   TEXT NOT NULL CHECK (length(container) BETWEEN 1 AND 100),
    content     TEXT NOT NULL CHECK (content <> ''),
    source      TEXT NOT NULL,
    -- A caller's name for what the memory is about (an onboarding question, say): a new memory with the same key
    -- in the same container replaces the old one.
    key         TEXT CHECK (key <> ''),
    -- When what the memory tells happened or was said (a chat turn's time); NULL when unknown.
    memory_date TIMESTAMPTZ,
    -- Consecutive memories (the turns of one chat session) share a group and are ordered by position, so search can
    -- index a turn with the one before it and let a hit lift its neighbours. Both NULL for a standalone memory.
    memory_group TEXT,
    position    BIGINT,
    embedding   BYTEA CHECK (length(embedding) % 4 = 0),
    metadata    JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX idx_memories_container_key ON memories (container, key) WHERE key IS NOT NULL;
CREATE INDEX idx_memories_container_created ON memories (container, created_at, id);

-- One row per container, written in the same transaction as every write to its memories: `version` goes up by one
-- on each insert, replacement or delete, so a process that caches a container's index validates it with one
-- primary-key read (no scan of the container's rows on the search path). `memory_count` is the rollup count.
CREATE TABLE memory_containers (
    container    TEXT PRIMARY KEY NOT NULL,
    version      BIGINT NOT NULL CHECK (version >= 0),
    memory_count BIGINT NOT NULL CHECK (memory_count >= 0)
);
