-- The alert failure-rate count (`Store::failure_type_rate`) dates failures by when they occurred: one range of this
-- index per type, instead of every failure first detected in the window (a backlog's whole analysis).
CREATE INDEX idx_failures_type_occurred ON failures (type, occurred_at);
