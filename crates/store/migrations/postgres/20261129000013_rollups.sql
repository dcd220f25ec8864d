-- Hourly rollups for the analytics API and the Overview (issue 7, "Speed at scale"): the totals of the conversations
-- whose last message fell in an hour, and the failures per type that occurred in it, per environment. Filled and
-- kept true by `Store::refresh_rollups` (crates/store/src/rollups.rs), which recomputes whole hours from the raw
-- tables; readers use an hour's rollup only when it is complete and not marked stale, and read the raw tables for
-- everything else, so an answer never depends on how recently the refresh ran.
-- Hours are UTC text 'YYYY-MM-DDTHH', as `dialect::time_bucket` makes them (the same text on SQLite).

-- When a failure happened: the time of the message it points at, else its conversation's last message (at the
-- time of the analysis). Trends are dated by it; before this column they joined messages and conversations.
ALTER TABLE failures ADD COLUMN occurred_at TIMESTAMPTZ;
UPDATE failures f SET occurred_at = COALESCE(
    (SELECT m.created_at FROM messages m WHERE m.id = f.message_id),
    (SELECT c.last_message_at FROM conversations c WHERE c.id = f.conversation_id));
CREATE INDEX idx_failures_occurred ON failures (occurred_at);

-- Hours before `watermark` have been computed (each row of the two tables below is exact unless its hour is in
-- rollup_stale); '' means none yet.
CREATE TABLE rollup_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    watermark    TEXT NOT NULL,
    refreshed_at TIMESTAMPTZ
);
INSERT INTO rollup_state (id, watermark) VALUES (1, '');

CREATE TABLE conversation_hours (
    hour          TEXT NOT NULL,
    environment   TEXT NOT NULL,
    conversations BIGINT NOT NULL,
    messages      BIGINT NOT NULL,
    analysed      BIGINT NOT NULL,
    health_sum    DOUBLE PRECISION NOT NULL,
    failing       BIGINT NOT NULL,
    PRIMARY KEY (hour, environment)
);

CREATE TABLE failure_hours (
    hour        TEXT NOT NULL,
    environment TEXT NOT NULL,
    type        TEXT NOT NULL,
    failures    BIGINT NOT NULL,
    PRIMARY KEY (hour, environment, type)
);

-- Hours whose data changed after the hour had ended (late or historical messages, analyses, deletes), written by
-- the triggers below in the same transaction as the change. Insert-only for writers (no row is ever contended);
-- the refresh recomputes the hours and deletes the rows its snapshot saw. Changes to the current hour are not
-- logged: it is never in a rollup.
CREATE TABLE rollup_stale (
    id   BIGSERIAL PRIMARY KEY,
    hour TEXT NOT NULL
);
CREATE INDEX idx_rollup_stale_hour ON rollup_stale (hour);

-- The hour of a timestamp, and whether it has ended by the wall clock (clock_timestamp, not the transaction's
-- start: a transaction that began before the hour ended still logs a change written after).
CREATE FUNCTION rollup_hour(t TIMESTAMPTZ) RETURNS TEXT LANGUAGE sql STABLE AS
$$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24') $$;

CREATE FUNCTION rollup_mark_stale(t TIMESTAMPTZ) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF t IS NOT NULL AND rollup_hour(t) < rollup_hour(clock_timestamp()) THEN
        INSERT INTO rollup_stale (hour) VALUES (rollup_hour(t));
    END IF;
END $$;

CREATE FUNCTION trg_conversations_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM rollup_mark_stale(NEW.last_message_at);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM rollup_mark_stale(OLD.last_message_at);
    ELSIF (OLD.last_message_at, OLD.message_count, OLD.health_score, OLD.failure_count, OLD.environment)
          IS DISTINCT FROM (NEW.last_message_at, NEW.message_count, NEW.health_score, NEW.failure_count, NEW.environment) THEN
        PERFORM rollup_mark_stale(OLD.last_message_at);
        IF rollup_hour(NEW.last_message_at) <> rollup_hour(OLD.last_message_at) THEN
            PERFORM rollup_mark_stale(NEW.last_message_at);
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER trg_conversations_rollup
AFTER INSERT OR DELETE OR UPDATE OF last_message_at, message_count, health_score, failure_count, environment
ON conversations FOR EACH ROW EXECUTE FUNCTION trg_conversations_rollup();

CREATE FUNCTION trg_failures_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM rollup_mark_stale(NEW.occurred_at);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM rollup_mark_stale(OLD.occurred_at);
    ELSIF (OLD.type, OLD.occurred_at) IS DISTINCT FROM (NEW.type, NEW.occurred_at) THEN
        PERFORM rollup_mark_stale(OLD.occurred_at);
        PERFORM rollup_mark_stale(NEW.occurred_at);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER trg_failures_rollup
AFTER INSERT OR DELETE OR UPDATE OF type, occurred_at
ON failures FOR EACH ROW EXECUTE FUNCTION trg_failures_rollup();
