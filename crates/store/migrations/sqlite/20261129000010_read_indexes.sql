-- Read API at scale (issue 7): indexes measured with `mentorfy bench read` at 100,000 conversations
-- (docs/PERFORMANCE.md, "Read API at 100,000 conversations").

-- The default list order (last message, then id, both descending) read straight from the index, and the columns
-- of the analytics period totals, so `period_stats` reads the index alone, never the wide rows. Supersedes the
-- index on last_message_at alone.
CREATE INDEX idx_conversations_last_message_id ON conversations
    (last_message_at, id, started_at, message_count, health_score, failure_count);
DROP INDEX idx_conversations_last_message;

-- `sort=health` and `sort=-health`: the exact sort expressions of conversation_list.rs (unanalysed last), written
-- there as literals so these indexes match.
CREATE INDEX idx_conversations_health_asc ON conversations (COALESCE(health_score, 101.0), id);
CREATE INDEX idx_conversations_health_desc ON conversations (COALESCE(health_score, -1.0), id);

-- `failure_type=` / `failure_status=` filters: the per-conversation EXISTS probe answered from the index.
CREATE INDEX idx_failures_conversation_type ON failures (conversation_id, type, status);
