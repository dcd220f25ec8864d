-- Job claims at scale (docs/PERFORMANCE.md, "Job claims at 100,000 pending jobs"). `claim_kinds` picks due pending
-- jobs oldest first (`state = 'pending' AND run_at <= now … ORDER BY run_at, id LIMIT 1`): this index gives that
-- order, so each pick stops at its first due entry instead of sorting every pending job. `state` leads so SQLite's
-- planner (no statistics) prefers it to idx_jobs_finished for `state = ?`. Expired leases are picked by a query
-- of their own (few running rows: idx_jobs_running_lease or idx_jobs_finished).
CREATE INDEX idx_jobs_pending_due ON jobs (state, run_at, id) WHERE state = 'pending';
-- Only the old `pending … OR running …` claim used it; `job_counts` (an operator command) now reads the table.
DROP INDEX idx_jobs_claim;
