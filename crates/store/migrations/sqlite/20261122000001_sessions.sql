-- Mentor sessions (the PRD's `sessions` table, types adapted for SQLite).
-- id: UUID v4 as 16 bytes; timestamps: RFC 3339 UTC text with exactly 6 fractional digits (sortable as text).
CREATE TABLE sessions (
    id                    BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    org_id                TEXT NOT NULL,
    supermemory_container TEXT NOT NULL,
    email                 TEXT,
    phone                 TEXT,
    name                  TEXT,
    clerk_user_id         TEXT,
    context               TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(context) AND json_type(context) = 'object'),
    status                TEXT NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'completed', 'abandoned')),
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
) STRICT;

CREATE INDEX idx_sessions_org_email ON sessions (org_id, email);
CREATE INDEX idx_sessions_org_clerk_user ON sessions (org_id, clerk_user_id);
CREATE INDEX idx_sessions_status_updated ON sessions (status, updated_at);
