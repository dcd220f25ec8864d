-- The durable job queue (issue 4). Jobs are rows, so a job can be enqueued in the transaction of the write that
-- causes it. Types as in 000001: UUID v7 as 16-byte BLOBs, JSON as checked TEXT, timestamps as RFC 3339 UTC text
-- with exactly 6 fractional digits (sortable as text). `done` rows are kept as history.
CREATE TABLE jobs (
    id               BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    queue            TEXT NOT NULL CHECK (queue <> ''),
    kind             TEXT NOT NULL CHECK (kind <> ''),
    payload          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'dead')),
    -- How many times a worker started it (counted at claim; a release gives the attempt back).
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- NULL: the workers' default (MENTORFY_JOB_MAX_ATTEMPTS).
    max_attempts     INTEGER CHECK (max_attempts IS NULL OR max_attempts >= 1),
    run_at           TEXT NOT NULL,
    -- Debounce: at most one pending job per key (partial unique index below).
    unique_key       TEXT,
    locked_by        TEXT,
    lease_expires_at TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    finished_at      TEXT
) STRICT;

CREATE UNIQUE INDEX idx_jobs_pending_unique_key ON jobs (unique_key) WHERE state = 'pending' AND unique_key IS NOT NULL;
-- Claiming: due pending jobs of a queue, and running jobs whose lease expired.
CREATE INDEX idx_jobs_claim ON jobs (state, queue, run_at);
CREATE INDEX idx_jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX idx_jobs_finished ON jobs (state, finished_at);
