-- Conversation analysis results (issue 6), kept on the conversation so lists and analytics read columns, never
-- scans of messages or failures.
ALTER TABLE conversations ADD COLUMN health_score REAL CHECK (health_score BETWEEN 0 AND 100);
-- {"score", "components": [{"name", "weight", "value", "evidence"}], "version"}
ALTER TABLE conversations ADD COLUMN health_breakdown TEXT CHECK (health_breakdown IS NULL OR (json_valid(health_breakdown) AND json_type(health_breakdown) = 'object'));
-- Rollup: failures rows of the conversation (any status), written by the analysis.
ALTER TABLE conversations ADD COLUMN failure_count INTEGER NOT NULL DEFAULT 0 CHECK (failure_count >= 0);
-- Mean sentiment of the user's messages, −1..1.
ALTER TABLE conversations ADD COLUMN avg_sentiment REAL CHECK (avg_sentiment BETWEEN -1 AND 1);
ALTER TABLE conversations ADD COLUMN analyzed_at TEXT;
-- When the conversation last became final (idle past SENSEI_IDLE_TIMEOUT); status is then 'idle'.
ALTER TABLE conversations ADD COLUMN final_at TEXT;
CREATE INDEX idx_conversations_health ON conversations (health_score);
CREATE INDEX idx_conversations_failures_last ON conversations (failure_count, last_message_at);
