-- Text search for the conversation list's `q` (conversation_list.rs; docs/PERFORMANCE.md, "Text search at 100,000
-- conversations"). `q` keeps its meaning, `lower(content) LIKE '%text%'` on some message: a GIN trigram index on
-- exactly that expression answers the LIKE for texts of 3 or more characters (PostgreSQL re-checks every candidate
-- row, so the result is the LIKE's own).
--
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since PostgreSQL 13: the owner of the database
-- may create it without being a superuser; Supabase has it. On a host without the contrib package this migration
-- fails until the package is installed. The extension is created once per database, in `public` when that schema
-- exists (not in the first schema of `search_path`, which for test and benchmark scratch schemas is dropped with
-- them), and the operator class is named through the schema it is in, wherever that is (Supabase: `extensions`).
-- The advisory lock serialises scratch schemas migrating side by side in one database.
DO $$
DECLARE
    trgm_schema text;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('mentorfy: CREATE EXTENSION pg_trgm'));
    SELECT n.nspname INTO trgm_schema
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NULL THEN
        IF to_regnamespace('public') IS NOT NULL THEN
            CREATE EXTENSION pg_trgm SCHEMA public;
        ELSE
            CREATE EXTENSION pg_trgm;
        END IF;
        SELECT n.nspname INTO trgm_schema
            FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
            WHERE e.extname = 'pg_trgm';
    END IF;
    EXECUTE format(
        'CREATE INDEX idx_messages_content_trgm ON messages USING gin (lower(content) %I.gin_trgm_ops)',
        trgm_schema
    );
END
$$;

-- Statistics on the indexed expression, so the planner estimates how many messages a text matches.
ANALYZE messages;

-- The other half of `q`, `external_id = text`: the unique key leads with source and environment, so without this
-- index that branch reads every conversation.
CREATE INDEX idx_conversations_external_id ON conversations (external_id);
