-- Mentor sessions (the PRD's `sessions` table).
CREATE TABLE sessions (
    id                    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                TEXT NOT NULL,
    supermemory_container TEXT NOT NULL,
    email                 TEXT,
    phone                 TEXT,
    name                  TEXT,
    clerk_user_id         TEXT,
    context               JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(context) = 'object'),
    status                TEXT NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'completed', 'abandoned')),
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX idx_sessions_org_email ON sessions (org_id, email);
CREATE INDEX idx_sessions_org_clerk_user ON sessions (org_id, clerk_user_id);
CREATE INDEX idx_sessions_status_updated ON sessions (status, updated_at);
