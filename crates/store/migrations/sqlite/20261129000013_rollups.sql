-- Hourly rollups for the analytics API and the Overview (issue 7, "Speed at scale"): the totals of the conversations
-- whose last message fell in an hour, and the failures per type that occurred in it, per environment. Filled and
-- kept true by `Store::refresh_rollups` (crates/store/src/rollups.rs), which recomputes whole hours from the raw
-- tables; readers use an hour's rollup only when it is complete and not marked stale, and read the raw tables for
-- everything else, so an answer never depends on how recently the refresh ran.
-- Hours are UTC text 'YYYY-MM-DDTHH', the prefix of the stored timestamps (and what `dialect::time_bucket` makes).

-- When a failure happened: the time of the message it points at, else its conversation's last message (at the
-- time of the analysis). Trends are dated by it; before this column they joined messages and conversations.
ALTER TABLE failures ADD COLUMN occurred_at TEXT;
UPDATE failures SET occurred_at = COALESCE(
    (SELECT m.created_at FROM messages m WHERE m.id = failures.message_id),
    (SELECT c.last_message_at FROM conversations c WHERE c.id = failures.conversation_id));
CREATE INDEX idx_failures_occurred ON failures (occurred_at);

-- Hours before `watermark` have been computed (each row of the two tables below is exact unless its hour is in
-- rollup_stale); '' means none yet.
CREATE TABLE rollup_state (
    id        INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    watermark TEXT NOT NULL,
    refreshed_at TEXT
) STRICT;
INSERT INTO rollup_state (id, watermark) VALUES (1, '');

CREATE TABLE conversation_hours (
    hour          TEXT NOT NULL,
    environment   TEXT NOT NULL,
    conversations INTEGER NOT NULL,
    messages      INTEGER NOT NULL,
    analysed      INTEGER NOT NULL,
    health_sum    REAL NOT NULL,
    failing       INTEGER NOT NULL,
    PRIMARY KEY (hour, environment)
) STRICT, WITHOUT ROWID;

CREATE TABLE failure_hours (
    hour        TEXT NOT NULL,
    environment TEXT NOT NULL,
    type        TEXT NOT NULL,
    failures    INTEGER NOT NULL,
    PRIMARY KEY (hour, environment, type)
) STRICT, WITHOUT ROWID;

-- Hours whose data changed after the hour had ended (late or historical messages, analyses, deletes), written by
-- the triggers below in the same transaction as the change. Insert-only for writers; the refresh recomputes the
-- hours and deletes the rows it saw. Changes to the current hour are not logged: it is never in a rollup.
CREATE TABLE rollup_stale (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    hour TEXT NOT NULL
) STRICT;
CREATE INDEX idx_rollup_stale_hour ON rollup_stale (hour);

CREATE TRIGGER trg_conversations_rollup_insert AFTER INSERT ON conversations
WHEN substr(NEW.last_message_at, 1, 13) < strftime('%Y-%m-%dT%H', 'now')
BEGIN
    INSERT INTO rollup_stale (hour) VALUES (substr(NEW.last_message_at, 1, 13));
END;

CREATE TRIGGER trg_conversations_rollup_update
AFTER UPDATE OF last_message_at, message_count, health_score, failure_count, environment ON conversations
WHEN (OLD.last_message_at IS NOT NEW.last_message_at OR OLD.message_count IS NOT NEW.message_count
      OR OLD.health_score IS NOT NEW.health_score OR OLD.failure_count IS NOT NEW.failure_count
      OR OLD.environment IS NOT NEW.environment)
BEGIN
    INSERT INTO rollup_stale (hour)
        SELECT substr(OLD.last_message_at, 1, 13)
        WHERE substr(OLD.last_message_at, 1, 13) < strftime('%Y-%m-%dT%H', 'now');
    INSERT INTO rollup_stale (hour)
        SELECT substr(NEW.last_message_at, 1, 13)
        WHERE substr(NEW.last_message_at, 1, 13) < strftime('%Y-%m-%dT%H', 'now')
          AND substr(NEW.last_message_at, 1, 13) <> substr(OLD.last_message_at, 1, 13);
END;

CREATE TRIGGER trg_conversations_rollup_delete AFTER DELETE ON conversations
WHEN substr(OLD.last_message_at, 1, 13) < strftime('%Y-%m-%dT%H', 'now')
BEGIN
    INSERT INTO rollup_stale (hour) VALUES (substr(OLD.last_message_at, 1, 13));
END;

CREATE TRIGGER trg_failures_rollup_insert AFTER INSERT ON failures
WHEN substr(NEW.occurred_at, 1, 13) < strftime('%Y-%m-%dT%H', 'now')
BEGIN
    INSERT INTO rollup_stale (hour) VALUES (substr(NEW.occurred_at, 1, 13));
END;

CREATE TRIGGER trg_failures_rollup_update AFTER UPDATE OF type, occurred_at ON failures
WHEN (OLD.type IS NOT NEW.type OR OLD.occurred_at IS NOT NEW.occurred_at)
BEGIN
    INSERT INTO rollup_stale (hour)
        SELECT substr(OLD.occurred_at, 1, 13) WHERE substr(OLD.occurred_at, 1, 13) < strftime('%Y-%m-%dT%H', 'now');
    INSERT INTO rollup_stale (hour)
        SELECT substr(NEW.occurred_at, 1, 13) WHERE substr(NEW.occurred_at, 1, 13) < strftime('%Y-%m-%dT%H', 'now');
END;

CREATE TRIGGER trg_failures_rollup_delete AFTER DELETE ON failures
WHEN substr(OLD.occurred_at, 1, 13) < strftime('%Y-%m-%dT%H', 'now')
BEGIN
    INSERT INTO rollup_stale (hour) VALUES (substr(OLD.occurred_at, 1, 13));
END;
