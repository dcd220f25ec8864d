//! Alert queries (issue 6, M6): `alert_events` (insert-if-absent by dedupe key, claim for delivery, mark sent /
//! failed / released), the edge-trigger state of alert rules, the alert settings on `app_settings`, and a
//! failure type's rate over a window. Knows nothing of Slack or HTTP; never logs or copies the webhook URL.

use sea_query::{Expr, ExprTrait, Iden, OnConflict, Order, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::analysis::Failures;
use crate::conversations::Conversations;
use crate::db::Store;
use crate::dialect::{now, ts};
use crate::error::StoreError;

#[derive(Iden, Clone, Copy)]
enum AlertEvents {
    Table,
    Id,
    Kind,
    ConversationId,
    FailureId,
    DedupeKey,
    Severity,
    Title,
    Payload,
    Status,
    Attempts,
    LastError,
    DigestId,
    ClaimToken,
    ClaimExpiresAt,
    CreatedAt,
    SentAt,
}

const EVENT_COLUMNS: [AlertEvents; 14] = [
    AlertEvents::Id,
    AlertEvents::Kind,
    AlertEvents::ConversationId,
    AlertEvents::FailureId,
    AlertEvents::DedupeKey,
    AlertEvents::Severity,
    AlertEvents::Title,
    AlertEvents::Payload,
    AlertEvents::Status,
    AlertEvents::Attempts,
    AlertEvents::LastError,
    AlertEvents::DigestId,
    AlertEvents::CreatedAt,
    AlertEvents::SentAt,
];

#[derive(Iden, Clone, Copy)]
enum AlertState {
    Table,
    RuleKey,
    Armed,
    LastValue,
    UpdatedAt,
}

#[derive(Iden, Clone, Copy)]
enum AppSettings {
    Table,
    Id,
    SlackWebhookUrl,
    AlertThresholds,
    SlackWebhookFailedAt,
    SlackWebhookError,
}

/// An alert to record. `payload` must be a JSON object and must not contain the webhook URL.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlertEvent {
    /// `failure`, `health`, `failure_rate`, `test` or `digest`.
    pub kind: String,
    pub conversation_id: Option<Uuid>,
    pub failure_id: Option<Uuid>,
    /// Recording a second event with the same key does nothing.
    pub dedupe_key: String,
    /// `low`, `medium`, `high`, `critical`, or `None` (test and digest messages).
    pub severity: Option<String>,
    pub title: String,
    pub payload: serde_json::Value,
    /// `pending` (to be delivered), `sent`, `failed` or `suppressed`.
    pub status: String,
    /// The digest this event was delivered in.
    pub digest_id: Option<Uuid>,
}

/// A stored alert event.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertEventRow {
    pub id: Uuid,
    pub kind: String,
    pub conversation_id: Option<Uuid>,
    pub failure_id: Option<Uuid>,
    pub dedupe_key: String,
    pub severity: Option<String>,
    pub title: String,
    #[sqlx(json)]
    pub payload: serde_json::Value,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub digest_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
}

/// The alert columns of `app_settings`. Debug never prints the webhook URL.
#[derive(Clone, Default, PartialEq, sqlx::FromRow)]
pub struct AlertSettings {
    /// A bearer credential: never log it or return it from an API.
    pub slack_webhook_url: Option<String>,
    /// A JSON object of threshold overrides, or `None`.
    #[sqlx(json(nullable))]
    pub alert_thresholds: Option<serde_json::Value>,
    /// When the webhook last answered a permanent error; `None` when it is fine.
    pub slack_webhook_failed_at: Option<OffsetDateTime>,
    /// That error's status class (`http 404`).
    pub slack_webhook_error: Option<String>,
}

impl std::fmt::Debug for AlertSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSettings")
            .field("slack_webhook_url", &self.slack_webhook_url.as_ref().map(|_| "[redacted]"))
            .field("alert_thresholds", &self.alert_thresholds)
            .field("slack_webhook_failed_at", &self.slack_webhook_failed_at)
            .field("slack_webhook_error", &self.slack_webhook_error)
            .finish()
    }
}

/// The edge-trigger state of one alert rule.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertRuleState {
    pub rule_key: String,
    /// True: the rule fires on its next crossing.
    pub armed: bool,
    pub last_value: Option<f64>,
    pub updated_at: OffsetDateTime,
}

/// A failure type's rate over a window: `failing` of `conversations` conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureRate {
    /// Distinct conversations with a failure of the type first detected in the window.
    pub failing: i64,
    /// Conversations whose last message is in the window.
    pub conversations: i64,
}

impl FailureRate {
    /// `failing / conversations`, 0 when there were no conversations, at most 1.
    pub fn share(&self) -> f64 {
        if self.conversations <= 0 { 0.0 } else { (self.failing as f64 / self.conversations as f64).min(1.0) }
    }
}

fn invalid(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

impl Store {
    /// Records an alert event unless one with its dedupe key exists. `Some(row)` when it is new, `None` when the
    /// key was already taken (the alert was raised before).
    pub async fn insert_alert_event(&self, e: &NewAlertEvent) -> Result<Option<AlertEventRow>, StoreError> {
        let kind = self.kind();
        let t = now();
        let sent_at = if e.status == "sent" { ts(kind, t) } else { Expr::null() };
        let insert = Query::insert()
            .into_table(AlertEvents::Table)
            .columns([
                AlertEvents::Id,
                AlertEvents::Kind,
                AlertEvents::ConversationId,
                AlertEvents::FailureId,
                AlertEvents::DedupeKey,
                AlertEvents::Severity,
                AlertEvents::Title,
                AlertEvents::Payload,
                AlertEvents::Status,
                AlertEvents::DigestId,
                AlertEvents::CreatedAt,
                AlertEvents::SentAt,
            ])
            .values([
                Expr::val(Uuid::now_v7()),
                Expr::val(e.kind.as_str()),
                Expr::val(e.conversation_id),
                Expr::val(e.failure_id),
                Expr::val(e.dedupe_key.as_str()),
                Expr::val(e.severity.clone()),
                Expr::val(e.title.as_str()),
                Expr::val(e.payload.clone()),
                Expr::val(e.status.as_str()),
                Expr::val(e.digest_id),
                ts(kind, t),
                sent_at,
            ])
            .map_err(invalid)?
            .on_conflict(OnConflict::column(AlertEvents::DedupeKey).do_nothing().to_owned())
            .returning(Query::returning().columns(EVENT_COLUMNS))
            .to_owned();
        self.write_returning::<AlertEventRow>(&insert).await
    }

    pub async fn get_alert_event(&self, id: Uuid) -> Result<Option<AlertEventRow>, StoreError> {
        let stmt = Query::select()
            .columns(EVENT_COLUMNS)
            .from(AlertEvents::Table)
            .and_where(Expr::col(AlertEvents::Id).eq(id))
            .to_owned();
        self.fetch_optional(&stmt).await
    }

    /// The latest alert events, newest first (at most `limit`, capped at 1000).
    pub async fn list_alert_events(&self, limit: u64) -> Result<Vec<AlertEventRow>, StoreError> {
        let stmt = Query::select()
            .columns(EVENT_COLUMNS)
            .from(AlertEvents::Table)
            .order_by(AlertEvents::CreatedAt, Order::Desc)
            .order_by(AlertEvents::Id, Order::Desc)
            .limit(Ord::min(limit, 1000))
            .to_owned();
        self.fetch_all(&stmt).await
    }

    /// Claims up to `limit` pending events, oldest first, for one delivery run for `lease`: pending events
    /// nobody holds, or whose claim expired. Returns the claim token and the events. Two runs never hold the
    /// same event, so an alert is not sent twice by concurrent runs.
    pub async fn claim_pending_alert_events(
        &self,
        lease: std::time::Duration,
        limit: u64,
    ) -> Result<(Uuid, Vec<AlertEventRow>), StoreError> {
        let kind = self.kind();
        let t = now();
        let expires = t + time::Duration::try_from(lease).unwrap_or(time::Duration::MINUTE);
        let token = Uuid::now_v7();
        let claimable = || {
            Expr::col(AlertEvents::Status).eq("pending").and(
                Expr::col(AlertEvents::ClaimToken).is_null().or(Expr::col(AlertEvents::ClaimExpiresAt).lt(ts(kind, t))),
            )
        };
        let due = Query::select()
            .column(AlertEvents::Id)
            .from(AlertEvents::Table)
            .cond_where(claimable())
            .order_by(AlertEvents::CreatedAt, Order::Asc)
            .order_by(AlertEvents::Id, Order::Asc)
            .limit(Ord::max(limit, 1))
            .to_owned();
        // The WHERE is repeated outside the subquery: on PostgreSQL a concurrent claimer's committed update is
        // re-checked against it, so the loser skips the rows instead of taking them over.
        let update = Query::update()
            .table(AlertEvents::Table)
            .value(AlertEvents::ClaimToken, token)
            .value(AlertEvents::ClaimExpiresAt, ts(kind, expires))
            .and_where(Expr::col(AlertEvents::Id).in_subquery(due))
            .cond_where(claimable())
            .returning(Query::returning().columns(EVENT_COLUMNS))
            .to_owned();
        let mut tx = self.begin_for_update().await?;
        let mut rows = tx.fetch_all::<AlertEventRow>(&update).await?;
        tx.commit().await?;
        rows.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok((token, rows))
    }

    /// Marks claimed events sent (optionally as part of digest `digest_id`), counting the attempt.
    pub async fn mark_alert_events_sent(
        &self,
        token: Uuid,
        ids: &[Uuid],
        digest_id: Option<Uuid>,
    ) -> Result<u64, StoreError> {
        let kind = self.kind();
        let mut update = self.finish_claimed(token, ids);
        update
            .value(AlertEvents::Status, "sent")
            .value(AlertEvents::SentAt, ts(kind, now()))
            .value(AlertEvents::LastError, Expr::null())
            .value(AlertEvents::DigestId, digest_id);
        self.execute(&update).await
    }

    /// Marks claimed events failed for good with `error` (a status class, never a URL or response body).
    pub async fn mark_alert_events_failed(&self, token: Uuid, ids: &[Uuid], error: &str) -> Result<u64, StoreError> {
        let mut update = self.finish_claimed(token, ids);
        update.value(AlertEvents::Status, "failed").value(AlertEvents::LastError, error);
        self.execute(&update).await
    }

    /// Gives claimed events back (still pending) after a failed attempt worth retrying, keeping `error`.
    pub async fn release_alert_events(&self, token: Uuid, ids: &[Uuid], error: &str) -> Result<u64, StoreError> {
        let mut update = self.finish_claimed(token, ids);
        update.value(AlertEvents::LastError, error);
        self.execute(&update).await
    }

    /// The update that ends claim `token` on `ids` and counts the attempt; the caller adds the outcome.
    fn finish_claimed(&self, token: Uuid, ids: &[Uuid]) -> sea_query::UpdateStatement {
        Query::update()
            .table(AlertEvents::Table)
            .value(AlertEvents::Attempts, Expr::col(AlertEvents::Attempts).add(1))
            .value(AlertEvents::ClaimToken, Expr::null())
            .value(AlertEvents::ClaimExpiresAt, Expr::null())
            .and_where(Expr::col(AlertEvents::ClaimToken).eq(token))
            .and_where(Expr::col(AlertEvents::Id).is_in(ids.iter().copied()))
            .to_owned()
    }

    /// The alert columns of `app_settings`; all empty when the row does not exist yet.
    pub async fn alert_settings(&self) -> Result<AlertSettings, StoreError> {
        let stmt = Query::select()
            .columns([
                AppSettings::SlackWebhookUrl,
                AppSettings::AlertThresholds,
                AppSettings::SlackWebhookFailedAt,
                AppSettings::SlackWebhookError,
            ])
            .from(AppSettings::Table)
            .and_where(Expr::col(AppSettings::Id).eq(1i32))
            .to_owned();
        Ok(self.fetch_optional::<AlertSettings>(&stmt).await?.unwrap_or_default())
    }

    /// Sets (or with `None` removes) the dashboard's Slack webhook and clears its failing mark. The caller
    /// validates the URL first. `false` when the `app_settings` row does not exist yet (the server creates it at
    /// start-up).
    pub async fn set_slack_webhook(&self, url: Option<&str>) -> Result<bool, StoreError> {
        let stmt = Query::update()
            .table(AppSettings::Table)
            .value(AppSettings::SlackWebhookUrl, url.map(str::to_owned))
            .value(AppSettings::SlackWebhookFailedAt, Expr::null())
            .value(AppSettings::SlackWebhookError, Expr::null())
            .and_where(Expr::col(AppSettings::Id).eq(1i32))
            .to_owned();
        Ok(self.execute(&stmt).await? > 0)
    }

    /// Sets (or with `None` removes) the threshold overrides, a JSON object. `false` when the row is missing.
    pub async fn set_alert_thresholds(&self, thresholds: Option<&serde_json::Value>) -> Result<bool, StoreError> {
        if thresholds.is_some_and(|t| !t.is_object()) {
            return Err(StoreError::Conflict("alert_thresholds must be a JSON object".to_owned()));
        }
        let stmt = Query::update()
            .table(AppSettings::Table)
            .value(AppSettings::AlertThresholds, thresholds.cloned())
            .and_where(Expr::col(AppSettings::Id).eq(1i32))
            .to_owned();
        Ok(self.execute(&stmt).await? > 0)
    }

    /// Marks the dashboard webhook as failing with `error` (a status class), or with `None` clears the mark.
    pub async fn set_slack_webhook_failing(&self, error: Option<&str>) -> Result<bool, StoreError> {
        let at = match error {
            Some(_) => ts(self.kind(), now()),
            None => Expr::null(),
        };
        let stmt = Query::update()
            .table(AppSettings::Table)
            .value(AppSettings::SlackWebhookFailedAt, at)
            .value(AppSettings::SlackWebhookError, error.map(str::to_owned))
            .and_where(Expr::col(AppSettings::Id).eq(1i32))
            .to_owned();
        Ok(self.execute(&stmt).await? > 0)
    }

    pub async fn alert_rule_state(&self, rule_key: &str) -> Result<Option<AlertRuleState>, StoreError> {
        let stmt = Query::select()
            .columns([AlertState::RuleKey, AlertState::Armed, AlertState::LastValue, AlertState::UpdatedAt])
            .from(AlertState::Table)
            .and_where(Expr::col(AlertState::RuleKey).eq(rule_key))
            .to_owned();
        self.fetch_optional(&stmt).await
    }

    /// Disarmed rules whose key starts with `prefix` (they wait for their value to recover). Few rows: the
    /// prefix is matched here rather than with LIKE (whose `_` would be a wildcard).
    pub async fn disarmed_alert_rules(&self, prefix: &str) -> Result<Vec<AlertRuleState>, StoreError> {
        let stmt = Query::select()
            .columns([AlertState::RuleKey, AlertState::Armed, AlertState::LastValue, AlertState::UpdatedAt])
            .from(AlertState::Table)
            .and_where(Expr::col(AlertState::Armed).eq(false))
            .order_by(AlertState::RuleKey, Order::Asc)
            .to_owned();
        let rows: Vec<AlertRuleState> = self.fetch_all(&stmt).await?;
        Ok(rows.into_iter().filter(|r| r.rule_key.starts_with(prefix)).collect())
    }

    /// The rule crossed its threshold with `value`: disarms it. `true` when it was armed (a missing rule is
    /// armed), i.e. the caller should fire. Atomic: of concurrent callers exactly one gets `true`.
    pub async fn disarm_alert_rule(&self, rule_key: &str, value: f64) -> Result<bool, StoreError> {
        self.flip_alert_rule(rule_key, value, true).await
    }

    /// The rule recovered with `value`: re-arms it. `true` when it was disarmed.
    pub async fn arm_alert_rule(&self, rule_key: &str, value: f64) -> Result<bool, StoreError> {
        self.flip_alert_rule(rule_key, value, false).await
    }

    /// Ensures the rule's row (armed), then flips `armed` from `from` to `!from` if it holds `from`.
    async fn flip_alert_rule(&self, rule_key: &str, value: f64, from: bool) -> Result<bool, StoreError> {
        let kind = self.kind();
        let t = now();
        let ensure = Query::insert()
            .into_table(AlertState::Table)
            .columns([AlertState::RuleKey, AlertState::Armed, AlertState::LastValue, AlertState::UpdatedAt])
            .values([Expr::val(rule_key), Expr::val(true), Expr::val(value), ts(kind, t)])
            .map_err(invalid)?
            .on_conflict(OnConflict::column(AlertState::RuleKey).do_nothing().to_owned())
            .to_owned();
        self.execute(&ensure).await?;
        let flip = Query::update()
            .table(AlertState::Table)
            .value(AlertState::Armed, !from)
            .value(AlertState::LastValue, value)
            .value(AlertState::UpdatedAt, ts(kind, t))
            .and_where(Expr::col(AlertState::RuleKey).eq(rule_key))
            .and_where(Expr::col(AlertState::Armed).eq(from))
            .to_owned();
        let flipped = self.execute(&flip).await? > 0;
        if !flipped {
            let touch = Query::update()
                .table(AlertState::Table)
                .value(AlertState::LastValue, value)
                .value(AlertState::UpdatedAt, ts(kind, t))
                .and_where(Expr::col(AlertState::RuleKey).eq(rule_key))
                .to_owned();
            self.execute(&touch).await?;
        }
        Ok(flipped)
    }

    /// The rate of failure type `kind` since `since`: distinct conversations with a failure of that type that
    /// occurred since then (`failures.occurred_at`, index `(type, occurred_at)`), over conversations whose last
    /// message is since then (index on `last_message_at`). Two indexed range counts, no scan of messages. Both sides
    /// are dated by when things happened, not by when they were analysed: analysing a backlog of old conversations
    /// neither inflates the rate nor makes each count read the whole backlog.
    pub async fn failure_type_rate(
        &self,
        failure_type: &str,
        since: OffsetDateTime,
    ) -> Result<FailureRate, StoreError> {
        let kind = self.kind();
        let failing = Query::select()
            .expr(Expr::col(Failures::ConversationId).count_distinct())
            .from(Failures::Table)
            .and_where(Expr::col(Failures::Type).eq(failure_type))
            .and_where(Expr::col(Failures::OccurredAt).gte(ts(kind, since)))
            .to_owned();
        let conversations = Query::select()
            .expr(Expr::col(Conversations::Id).count())
            .from(Conversations::Table)
            .and_where(Expr::col(Conversations::LastMessageAt).gte(ts(kind, since)))
            .to_owned();
        let (failing,) = self.fetch_optional::<(i64,)>(&failing).await?.unwrap_or((0,));
        let (conversations,) = self.fetch_optional::<(i64,)>(&conversations).await?.unwrap_or((0,));
        Ok(FailureRate { failing, conversations })
    }
}
