//! Ingested conversations (Sensei's track, batch and OTLP paths): one transaction per request that records the
//! client's event ids, upserts each conversation, appends its messages (a repeated message id is a no-op), keeps
//! the rollups current and enqueues the analysis job. Either all of it commits or none of it does.

use sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::conversations::{CONVERSATION_COLUMNS, Conversations, MESSAGE_COLUMNS, Messages, rollup_update};
use crate::db::{Store, Tx};
use crate::dialect::{json_merge, now, ts};
use crate::error::StoreError;
use crate::jobs::NewJob;

#[derive(sea_query::Iden, Clone, Copy)]
enum IngestEvents {
    Table,
    EventId,
    ApiKeyId,
    ConversationId,
    ReceivedAt,
}

/// Rows per multi-row message insert: 15 bound values each, well under both backends' parameter limits.
const INSERT_CHUNK: usize = 200;

/// One conversation's worth of ingested data.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestWrite {
    /// The client's event id (batch API): a repeat within the dedupe window stores nothing.
    pub event_id: Option<String>,
    pub api_key_id: Option<Uuid>,
    /// `api` or `otel` (never `mentorfy`: API keys cannot write Mentor's conversations).
    pub source: String,
    pub environment: String,
    pub external_id: String,
    /// Filled in when the stored conversation has none (the first value given wins).
    pub user_id: Option<String>,
    pub agent_id: Option<String>,
    /// A JSON object merged key by key into the stored metadata (nulls removed by the caller).
    pub metadata: serde_json::Value,
    pub messages: Vec<IngestedMessage>,
}

/// A message to append; `external_id` is the dedupe key within the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestedMessage {
    pub external_id: String,
    pub role: String,
    pub content: String,
    pub status: String,
    pub finish_reason: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub latency_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
    /// A JSON object.
    pub metadata: serde_json::Value,
    pub created_at: OffsetDateTime,
}

/// What happened to one [`IngestWrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestWriteOutcome {
    /// Its event id was already recorded: nothing was written.
    DuplicateEvent,
    /// The conversation was upserted; `inserted` messages were new and `duplicates` were already stored.
    Stored { conversation_id: Uuid, inserted: u64, duplicates: u64 },
}

impl Store {
    /// Writes every ingested conversation in one transaction, enqueuing `job(conversation_id)` for each that
    /// gained a message (a debounced job: its unique key makes a second pending one a no-op). Returns one outcome
    /// per write, in order. On error nothing was stored.
    pub async fn ingest(
        &self,
        writes: &[IngestWrite],
        job: &(dyn Fn(Uuid) -> NewJob + Sync),
    ) -> Result<Vec<IngestWriteOutcome>, StoreError> {
        let mut tx = self.begin_for_update().await?;
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(self.ingest_one(&mut tx, w, job).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn ingest_one(
        &self,
        tx: &mut Tx,
        w: &IngestWrite,
        job: &(dyn Fn(Uuid) -> NewJob + Sync),
    ) -> Result<IngestWriteOutcome, StoreError> {
        let kind = self.kind();
        let t = now();
        if let Some(event_id) = &w.event_id {
            let record = Query::insert()
                .into_table(IngestEvents::Table)
                .columns([IngestEvents::EventId, IngestEvents::ApiKeyId, IngestEvents::ReceivedAt])
                .values([Expr::val(event_id.as_str()), Expr::val(w.api_key_id), ts(kind, t)])
                .map_err(|e| StoreError::Other(e.to_string()))?
                .on_conflict(OnConflict::column(IngestEvents::EventId).do_nothing().to_owned())
                .to_owned();
            if tx.execute(&record).await? == 0 {
                return Ok(IngestWriteOutcome::DuplicateEvent);
            }
        }

        let excluded = |c: Conversations| Expr::col((Alias::new("excluded"), c));
        let current = |c: Conversations| Expr::col((Conversations::Table, c));
        let upsert = Query::insert()
            .into_table(Conversations::Table)
            .columns(CONVERSATION_COLUMNS)
            .values([
                Expr::val(Uuid::now_v7()),
                Expr::val(w.source.as_str()),
                Expr::val(w.external_id.as_str()),
                Expr::val(None::<String>),
                Expr::val(w.agent_id.clone()),
                Expr::val(w.user_id.clone()),
                Expr::val(w.metadata.clone()),
                Expr::val("active"),
                Expr::val(0i64),
                ts(kind, t),
                ts(kind, t),
                ts(kind, t),
                ts(kind, t),
                Expr::val(w.environment.as_str()),
                Expr::val(None::<OffsetDateTime>),
            ])
            .map_err(|e| StoreError::Other(e.to_string()))?
            .on_conflict(
                OnConflict::columns([Conversations::Source, Conversations::Environment, Conversations::ExternalId])
                    .value(
                        Conversations::UserId,
                        Func::coalesce([current(Conversations::UserId), excluded(Conversations::UserId)]),
                    )
                    .value(
                        Conversations::AgentId,
                        Func::coalesce([current(Conversations::AgentId), excluded(Conversations::AgentId)]),
                    )
                    .value(
                        Conversations::Metadata,
                        json_merge(kind, current(Conversations::Metadata), excluded(Conversations::Metadata)),
                    )
                    .value(Conversations::UpdatedAt, excluded(Conversations::UpdatedAt))
                    .to_owned(),
            )
            .returning_col(Conversations::Id)
            .to_owned();
        let (conversation_id,) = tx
            .fetch_optional::<(Uuid,)>(&upsert)
            .await?
            .ok_or_else(|| StoreError::Other("conversation upsert returned no row".into()))?;

        if let Some(event_id) = &w.event_id {
            let link = Query::update()
                .table(IngestEvents::Table)
                .value(IngestEvents::ConversationId, conversation_id)
                .and_where(Expr::col(IngestEvents::EventId).eq(event_id.as_str()))
                .to_owned();
            tx.execute(&link).await?;
        }

        let mut inserted: Vec<(OffsetDateTime,)> = Vec::new();
        for chunk in w.messages.chunks(INSERT_CHUNK) {
            let mut insert = Query::insert();
            insert.into_table(Messages::Table).columns(MESSAGE_COLUMNS);
            for m in chunk {
                insert
                    .values([
                        Expr::val(Uuid::now_v7()),
                        Expr::val(conversation_id),
                        Expr::val(m.external_id.as_str()),
                        Expr::val(m.role.as_str()),
                        Expr::val(m.content.as_str()),
                        Expr::val(m.status.as_str()),
                        Expr::val(m.finish_reason.clone()),
                        Expr::val(m.input_tokens),
                        Expr::val(m.output_tokens),
                        Expr::val(m.latency_ms),
                        Expr::val(m.ttft_ms),
                        Expr::val(m.metadata.clone()),
                        ts(kind, m.created_at),
                        Expr::val(None::<f64>),
                    ])
                    .map_err(|e| StoreError::Other(e.to_string()))?;
            }
            insert
                .on_conflict(
                    OnConflict::columns([Messages::ConversationId, Messages::ExternalId])
                        .target_and_where(Expr::col(Messages::ExternalId).is_not_null())
                        .do_nothing()
                        .to_owned(),
                )
                .returning_col(Messages::CreatedAt);
            inserted.extend(tx.fetch_all::<(OffsetDateTime,)>(&insert).await?);
        }

        let count = inserted.len() as u64;
        let duplicates = w.messages.len() as u64 - count;
        let earliest = inserted.iter().map(|(t,)| *t).min();
        let latest = inserted.iter().map(|(t,)| *t).max();
        if let (Some(earliest), Some(latest)) = (earliest, latest) {
            tx.execute(&rollup_update(kind, conversation_id, count as i64, earliest, latest)).await?;
            self.enqueue_in(tx, &job(conversation_id)).await?;
        }
        Ok(IngestWriteOutcome::Stored { conversation_id, inserted: count, duplicates })
    }

    /// Forgets client event ids received before `before` (the dedupe window has passed). Returns how many.
    pub async fn prune_ingest_events(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let stmt = Query::delete()
            .from_table(IngestEvents::Table)
            .and_where(Expr::col(IngestEvents::ReceivedAt).lt(ts(self.kind(), before)))
            .to_owned();
        self.execute(&stmt).await
    }

    /// Whether this client event id is recorded (tests and operators).
    pub async fn ingest_event_seen(&self, event_id: &str) -> Result<bool, StoreError> {
        let stmt = Query::select()
            .column(IngestEvents::EventId)
            .from(IngestEvents::Table)
            .and_where(Expr::col(IngestEvents::EventId).eq(event_id))
            .to_owned();
        Ok(self.fetch_optional::<(String,)>(&stmt).await?.is_some())
    }
}
