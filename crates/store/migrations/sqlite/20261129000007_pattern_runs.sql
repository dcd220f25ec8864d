-- Usage-pattern runs (issue 6): one row per pattern analysis, so the dashboard can show the current patterns
-- (the latest finished run), when they were computed, over which conversations, and how many stayed unclustered.
-- usage_patterns.run_id points here (not a foreign key: that table predates this one).

CREATE TABLE pattern_runs (
    id              BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    -- 'scheduled' (the weekly job) or 'manual' (`mentorfy patterns run`).
    trigger         TEXT NOT NULL CHECK (trigger IN ('scheduled', 'manual')),
    -- Conversations whose first message falls in [window_from, window_to).
    window_from     TEXT NOT NULL,
    window_to       TEXT NOT NULL CHECK (window_to >= window_from),
    -- 'tfidf' or 'embedding:<model>'.
    representation  TEXT NOT NULL CHECK (representation <> ''),
    conversations   INTEGER NOT NULL CHECK (conversations >= 0),
    clustered       INTEGER NOT NULL CHECK (clustered >= 0 AND clustered <= conversations),
    patterns        INTEGER NOT NULL CHECK (patterns >= 0),
    -- The parameters used (thresholds, sample size), for reproducing a run.
    params          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params) AND json_type(params) = 'object'),
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL
) STRICT;
CREATE INDEX idx_pattern_runs_finished ON pattern_runs (finished_at DESC);
