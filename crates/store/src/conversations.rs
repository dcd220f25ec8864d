//! Queries on `conversations` and `messages` (Sensei's tables; Mentor chats are conversations with source
//! `mentorfy`). A message insert and its conversation's rollups (`message_count`, `last_message_at`) commit in
//! one transaction, so the rollups never drift from the rows. Nothing here counts messages with a scan.

use sea_query::{Expr, ExprTrait, Func, Iden, OnConflict, Order, Query, SelectStatement};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::Store;
use crate::dialect::{now, ts};
use crate::error::StoreError;
use crate::text_signature::{self, Signature};

#[derive(Iden, Clone, Copy)]
pub(crate) enum Conversations {
    Table,
    Id,
    Source,
    ExternalId,
    OrgId,
    AgentId,
    UserId,
    Metadata,
    Status,
    MessageCount,
    StartedAt,
    LastMessageAt,
    CreatedAt,
    UpdatedAt,
    Environment,
    FirstMessageAt,
    HealthScore,
    HealthBreakdown,
    FailureCount,
    AvgSentiment,
    AnalyzedAt,
    FinalAt,
}

/// The columns every writer sets when it creates a conversation; reads use [`CONVERSATION_READ_COLUMNS`].
pub(crate) const CONVERSATION_COLUMNS: [Conversations; 15] = [
    Conversations::Id,
    Conversations::Source,
    Conversations::ExternalId,
    Conversations::OrgId,
    Conversations::AgentId,
    Conversations::UserId,
    Conversations::Metadata,
    Conversations::Status,
    Conversations::MessageCount,
    Conversations::StartedAt,
    Conversations::LastMessageAt,
    Conversations::CreatedAt,
    Conversations::UpdatedAt,
    Conversations::Environment,
    Conversations::FirstMessageAt,
];

/// Every column of [`ConversationRow`]: the created ones plus the analysis results.
pub(crate) const CONVERSATION_READ_COLUMNS: [Conversations; 21] = [
    Conversations::Id,
    Conversations::Source,
    Conversations::ExternalId,
    Conversations::OrgId,
    Conversations::AgentId,
    Conversations::UserId,
    Conversations::Metadata,
    Conversations::Status,
    Conversations::MessageCount,
    Conversations::StartedAt,
    Conversations::LastMessageAt,
    Conversations::CreatedAt,
    Conversations::UpdatedAt,
    Conversations::Environment,
    Conversations::FirstMessageAt,
    Conversations::HealthScore,
    Conversations::HealthBreakdown,
    Conversations::FailureCount,
    Conversations::AvgSentiment,
    Conversations::AnalyzedAt,
    Conversations::FinalAt,
];

#[derive(Iden, Clone, Copy)]
pub(crate) enum Messages {
    Table,
    Id,
    ConversationId,
    ExternalId,
    Role,
    Content,
    Status,
    FinishReason,
    InputTokens,
    OutputTokens,
    LatencyMs,
    TtftMs,
    Metadata,
    CreatedAt,
    SentimentScore,
}

pub(crate) const MESSAGE_COLUMNS: [Messages; 14] = [
    Messages::Id,
    Messages::ConversationId,
    Messages::ExternalId,
    Messages::Role,
    Messages::Content,
    Messages::Status,
    Messages::FinishReason,
    Messages::InputTokens,
    Messages::OutputTokens,
    Messages::LatencyMs,
    Messages::TtftMs,
    Messages::Metadata,
    Messages::CreatedAt,
    Messages::SentimentScore,
];

/// A conversation: ours (`source = "mentorfy"`, `external_id` = the session id) or ingested from another agent.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConversationRow {
    pub id: Uuid,
    /// Who produced it: `mentorfy` for our own chats; later `api`, `otlp`.
    pub source: String,
    /// The conversation's id in its source; unique per source.
    pub external_id: String,
    pub org_id: Option<String>,
    pub agent_id: Option<String>,
    pub user_id: Option<String>,
    /// A JSON object.
    #[sqlx(json)]
    pub metadata: serde_json::Value,
    /// `active`, `idle` or `closed`; a new message makes it `active` again.
    pub status: String,
    /// Rollup: the number of messages, updated in the transaction that inserts each one.
    pub message_count: i64,
    /// Creation time, moved back to the earliest message's `created_at` (imports of past conversations).
    pub started_at: OffsetDateTime,
    /// The latest message's `created_at`; equals `started_at` until the first message.
    pub last_message_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The deployment environment it came from (`production` unless the sender said otherwise).
    pub environment: String,
    /// Rollup: the earliest message's `created_at`; `None` until the first message.
    pub first_message_at: Option<OffsetDateTime>,
    /// 0..100 from the analysis; `None` until analysed.
    pub health_score: Option<f64>,
    /// `{"score", "components": [...], "version"}`; `None` until analysed.
    #[sqlx(json(nullable))]
    pub health_breakdown: Option<serde_json::Value>,
    /// Rollup: the conversation's `failures` rows, written by the analysis.
    pub failure_count: i64,
    /// Mean sentiment of the user's messages.
    pub avg_sentiment: Option<f64>,
    pub analyzed_at: Option<OffsetDateTime>,
    /// When it last became final (idle past the idle timeout; `status = 'idle'`).
    pub final_at: Option<OffsetDateTime>,
}

/// What [`Store::upsert_conversation`] creates when `(source, external_id)` is new.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation<'a> {
    pub source: &'a str,
    pub environment: &'a str,
    pub external_id: &'a str,
    pub org_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    /// Must be a JSON object.
    pub metadata: serde_json::Value,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// The client's id for the message (a UIMessage id, our `msg_…`); unique within the conversation.
    pub external_id: Option<String>,
    /// `user`, `assistant`, `system` or `tool`.
    pub role: String,
    /// Plain text.
    pub content: String,
    /// `complete`, `aborted`, `error` or `superseded`.
    pub status: String,
    pub finish_reason: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
    /// A JSON object (tool calls and the like).
    #[sqlx(json)]
    pub metadata: serde_json::Value,
    pub created_at: OffsetDateTime,
    /// Sentiment (−1..1) from the analysis pipeline; `None` until analysed.
    pub sentiment_score: Option<f64>,
}

/// A message to insert; the caller generates the id (UUID v7) and the time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub external_id: Option<&'a str>,
    pub role: &'a str,
    pub content: &'a str,
    pub status: &'a str,
    pub finish_reason: Option<&'a str>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
    /// Must be a JSON object.
    pub metadata: serde_json::Value,
    /// Stored truncated to the microsecond, like every timestamp.
    pub created_at: OffsetDateTime,
}

/// What [`Store::insert_message`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The message was stored and the conversation's rollups updated.
    Inserted,
    /// The conversation already holds a message with this `external_id`: nothing changed.
    Duplicate,
}

/// The rollup update after `inserted` messages (times `earliest..=latest`) were added to a conversation in the
/// same transaction: `message_count`, `first_message_at`, `last_message_at`, `started_at` moved back to the
/// earliest message, `updated_at`, and `status = 'active'` (a new message reopens an idle conversation).
pub(crate) fn rollup_update(
    kind: crate::StoreKind,
    conversation_id: Uuid,
    inserted: i64,
    earliest: OffsetDateTime,
    latest: OffsetDateTime,
) -> sea_query::UpdateStatement {
    rollup_update_many(kind, &[(conversation_id, inserted, earliest, latest)])
}

/// [`rollup_update`] for several conversations in one statement (`CASE` on the id), each with its own
/// `(id, inserted, earliest, latest)`. `gained` must not be empty.
pub(crate) fn rollup_update_many(
    kind: crate::StoreKind,
    gained: &[(Uuid, i64, OffsetDateTime, OffsetDateTime)],
) -> sea_query::UpdateStatement {
    let id = || Expr::col(Conversations::Id);
    let col = Expr::col;
    let mut count = sea_query::CaseStatement::new();
    let mut last = sea_query::CaseStatement::new();
    let mut first = sea_query::CaseStatement::new();
    let mut started = sea_query::CaseStatement::new();
    for (conversation_id, inserted, earliest, latest) in gained {
        let (earliest, latest) = (ts(kind, *earliest), ts(kind, *latest));
        count = count.case(id().eq(*conversation_id), col(Conversations::MessageCount).add(*inserted));
        last = last.case(
            id().eq(*conversation_id)
                .and(col(Conversations::MessageCount).eq(0).or(col(Conversations::LastMessageAt).lt(latest.clone()))),
            latest,
        );
        first = first.case(
            id().eq(*conversation_id).and(
                col(Conversations::FirstMessageAt)
                    .is_null()
                    .or(col(Conversations::FirstMessageAt).gt(earliest.clone())),
            ),
            earliest.clone(),
        );
        started =
            started.case(id().eq(*conversation_id).and(col(Conversations::StartedAt).gt(earliest.clone())), earliest);
    }
    Query::update()
        .table(Conversations::Table)
        .value(Conversations::MessageCount, count.finally(col(Conversations::MessageCount)))
        .value(Conversations::LastMessageAt, last.finally(col(Conversations::LastMessageAt)))
        .value(Conversations::FirstMessageAt, first.finally(col(Conversations::FirstMessageAt)))
        .value(Conversations::StartedAt, started.finally(col(Conversations::StartedAt)))
        .value(Conversations::UpdatedAt, ts(kind, now()))
        .value(Conversations::Status, "active")
        .and_where(id().is_in(gained.iter().map(|g| g.0)))
        .to_owned()
}

pub(crate) fn select_conversations() -> SelectStatement {
    Query::select().columns(CONVERSATION_READ_COLUMNS).from(Conversations::Table).to_owned()
}

fn select_messages(conversation_id: Uuid) -> SelectStatement {
    Query::select()
        .columns(MESSAGE_COLUMNS)
        .from(Messages::Table)
        .and_where(Expr::col(Messages::ConversationId).eq(conversation_id))
        .to_owned()
}

impl Store {
    /// Gets the conversation `(source, external_id)`, creating it when missing. Safe under concurrency on both
    /// backends: the insert is `ON CONFLICT DO NOTHING` and whoever loses the race reads the winner's row.
    /// An existing conversation keeps its fields, except that a missing `agent_id` or `user_id` is filled in
    /// from `c` (the first value given wins).
    pub async fn upsert_conversation(&self, c: NewConversation<'_>) -> Result<ConversationRow, StoreError> {
        let existing = match self.find_conversation(c.source, c.environment, c.external_id).await? {
            Some(row) => row,
            None => {
                let t = now();
                let kind = self.kind();
                let insert = Query::insert()
                    .into_table(Conversations::Table)
                    .columns(CONVERSATION_COLUMNS)
                    .values([
                        Expr::val(Uuid::now_v7()),
                        Expr::val(c.source),
                        Expr::val(c.external_id),
                        Expr::val(c.org_id),
                        Expr::val(c.agent_id),
                        Expr::val(c.user_id),
                        Expr::val(c.metadata.clone()),
                        Expr::val("active"),
                        Expr::val(0i64),
                        ts(kind, t),
                        ts(kind, t),
                        ts(kind, t),
                        ts(kind, t),
                        Expr::val(c.environment),
                        Expr::val(None::<OffsetDateTime>),
                    ])
                    .map_err(|e| StoreError::Other(e.to_string()))?
                    .on_conflict(
                        OnConflict::columns([
                            Conversations::Source,
                            Conversations::Environment,
                            Conversations::ExternalId,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .returning(Query::returning().columns(CONVERSATION_READ_COLUMNS))
                    .to_owned();
                if let Some(created) = self.write_returning::<ConversationRow>(&insert).await? {
                    return Ok(created);
                }
                // Another writer created it between our read and our insert.
                self.find_conversation(c.source, c.environment, c.external_id)
                    .await?
                    .ok_or_else(|| StoreError::Other("conversation vanished during upsert".into()))?
            }
        };
        let fills_agent = existing.agent_id.is_none() && c.agent_id.is_some();
        let fills_user = existing.user_id.is_none() && c.user_id.is_some();
        if !(fills_agent || fills_user) {
            return Ok(existing);
        }
        // COALESCE keeps a value another writer set meanwhile.
        let update = Query::update()
            .table(Conversations::Table)
            .value(Conversations::AgentId, Func::coalesce([Expr::col(Conversations::AgentId), Expr::val(c.agent_id)]))
            .value(Conversations::UserId, Func::coalesce([Expr::col(Conversations::UserId), Expr::val(c.user_id)]))
            .value(Conversations::UpdatedAt, ts(self.kind(), now()))
            .and_where(Expr::col(Conversations::Id).eq(existing.id))
            .returning(Query::returning().columns(CONVERSATION_READ_COLUMNS))
            .to_owned();
        Ok(self.write_returning::<ConversationRow>(&update).await?.unwrap_or(existing))
    }

    /// The conversation with this id, if any.
    pub async fn get_conversation(&self, id: Uuid) -> Result<Option<ConversationRow>, StoreError> {
        let stmt = select_conversations().and_where(Expr::col(Conversations::Id).eq(id)).to_owned();
        self.fetch_optional::<ConversationRow>(&stmt).await
    }

    /// The conversation `(source, environment, external_id)`, if any.
    pub async fn find_conversation(
        &self,
        source: &str,
        environment: &str,
        external_id: &str,
    ) -> Result<Option<ConversationRow>, StoreError> {
        let stmt = select_conversations()
            .and_where(Expr::col(Conversations::Source).eq(source))
            .and_where(Expr::col(Conversations::Environment).eq(environment))
            .and_where(Expr::col(Conversations::ExternalId).eq(external_id))
            .to_owned();
        self.fetch_optional::<ConversationRow>(&stmt).await
    }

    /// Inserts a message and, in the same transaction and only if it was inserted, updates its conversation:
    /// `message_count + 1`, `last_message_at` = the latest message time, `started_at` moved back if this
    /// message is earlier, `updated_at` = now, `status = 'active'`. A message whose `external_id` the
    /// conversation already holds changes nothing ([`InsertOutcome::Duplicate`]). An unknown conversation, a
    /// reused `id` or a value outside the checks (role, status) is [`StoreError::Conflict`].
    pub async fn insert_message(&self, m: NewMessage<'_>) -> Result<InsertOutcome, StoreError> {
        self.insert_message_and_enqueue(m, &[]).await
    }

    /// [`Store::insert_message`], and enqueues `jobs` in the same transaction if (and only if) the message was
    /// inserted: the message and the work it causes commit together.
    pub async fn insert_message_and_enqueue(
        &self,
        m: NewMessage<'_>,
        jobs: &[crate::NewJob],
    ) -> Result<InsertOutcome, StoreError> {
        let kind = self.kind();
        let created = ts(kind, m.created_at);
        let insert = Query::insert()
            .into_table(Messages::Table)
            .columns(MESSAGE_COLUMNS)
            .values([
                Expr::val(m.id),
                Expr::val(m.conversation_id),
                Expr::val(m.external_id),
                Expr::val(m.role),
                Expr::val(m.content),
                Expr::val(m.status),
                Expr::val(m.finish_reason),
                Expr::val(m.input_tokens),
                Expr::val(m.output_tokens),
                Expr::val(m.latency_ms),
                Expr::val(m.ttft_ms),
                Expr::val(m.metadata),
                created,
                Expr::val(None::<f64>),
            ])
            .map_err(|e| StoreError::Other(e.to_string()))?
            // The partial unique index on (conversation_id, external_id): only that conflict is a duplicate; a
            // reused primary key still fails.
            .on_conflict(
                OnConflict::columns([Messages::ConversationId, Messages::ExternalId])
                    .target_and_where(Expr::col(Messages::ExternalId).is_not_null())
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        let rollup = rollup_update(kind, m.conversation_id, 1, m.created_at, m.created_at);

        let mut tx = self.begin_for_update().await?;
        if tx.execute(&insert).await? == 0 {
            tx.commit().await?; // nothing was written; ends the transaction now rather than on drop
            return Ok(InsertOutcome::Duplicate);
        }
        tx.execute(&rollup).await?;
        tx.execute(&text_signature::or_update(&[(m.conversation_id, Signature::of(m.content))])).await?;
        for job in jobs {
            self.enqueue_in(&mut tx, job).await?;
        }
        tx.commit().await?;
        Ok(InsertOutcome::Inserted)
    }

    /// The last `limit` messages whose status is one of `statuses`, oldest first (by `created_at`, then id).
    /// An empty `statuses` matches nothing.
    pub async fn recent_messages(
        &self,
        conversation_id: Uuid,
        limit: u32,
        statuses: &[&str],
    ) -> Result<Vec<MessageRow>, StoreError> {
        if statuses.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let stmt = select_messages(conversation_id)
            .and_where(Expr::col(Messages::Status).is_in(statuses.iter().copied()))
            .order_by(Messages::CreatedAt, Order::Desc)
            .order_by(Messages::Id, Order::Desc)
            .limit(u64::from(limit))
            .to_owned();
        let mut rows = self.fetch_all::<MessageRow>(&stmt).await?;
        rows.reverse();
        Ok(rows)
    }

    /// Sets the status of the conversation's message with this `external_id` (for example `superseded` when
    /// the user regenerates a reply). True when such a message exists. The rollups do not change: every
    /// message row counts, whatever its status.
    pub async fn set_message_status_by_external_id(
        &self,
        conversation_id: Uuid,
        external_id: &str,
        status: &str,
    ) -> Result<bool, StoreError> {
        let stmt = Query::update()
            .table(Messages::Table)
            .value(Messages::Status, status)
            .and_where(Expr::col(Messages::ConversationId).eq(conversation_id))
            .and_where(Expr::col(Messages::ExternalId).eq(external_id))
            .to_owned();
        Ok(self.execute(&stmt).await? > 0)
    }

    /// Every message of the conversation, oldest first (by `created_at`, then id).
    pub async fn list_messages(&self, conversation_id: Uuid) -> Result<Vec<MessageRow>, StoreError> {
        let stmt = select_messages(conversation_id)
            .order_by(Messages::CreatedAt, Order::Asc)
            .order_by(Messages::Id, Order::Asc)
            .to_owned();
        self.fetch_all::<MessageRow>(&stmt).await
    }
}
