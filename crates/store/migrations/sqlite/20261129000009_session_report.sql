-- The Mentor funnel and leads (`GET /api/v1/sessions`): sessions by creation time, newest first, with or
-- without an org; the id breaks ties for the keyset cursor.
CREATE INDEX idx_sessions_created ON sessions (created_at, id);
CREATE INDEX idx_sessions_org_created ON sessions (org_id, created_at, id);
