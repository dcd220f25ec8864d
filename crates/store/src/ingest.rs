//! Ingested conversations (Sensei's track, batch and OTLP paths): one transaction per request that records the
//! client's event ids, upserts each conversation, appends its messages (a repeated message id is a no-op), keeps
//! the rollups current and enqueues the analysis job. Either all of it commits or none of it does.

use std::collections::{HashMap, HashSet};

use sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::conversations::{CONVERSATION_COLUMNS, Conversations, MESSAGE_COLUMNS, Messages, rollup_update_many};
use crate::db::{Store, Tx};
use crate::dialect::{json_merge, now, ts};
use crate::error::StoreError;
use crate::jobs::NewJob;
use crate::text_signature::{self, Signature};

#[derive(sea_query::Iden, Clone, Copy)]
enum IngestEvents {
    Table,
    EventId,
    ApiKeyId,
    ConversationId,
    ReceivedAt,
}

/// Rows per multi-row statement. SQLite: 200 (fewer round trips to its single writer). PostgreSQL: 50 — measured,
/// a 100-conversation batch took 300–400 ms with 200-row statements against 60 ms with 50-row ones, the time being
/// spent client-side (statement size grows the encoding cost faster than linearly), not in the server.
pub(crate) fn rows_per_statement(kind: crate::StoreKind) -> usize {
    match kind {
        crate::StoreKind::Sqlite => 200,
        crate::StoreKind::Postgres => 50,
    }
}

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
    ///
    /// Statements are batched: one multi-row insert of the event ids, one upsert per conversation, multi-row
    /// message inserts across conversations, one rollup update per conversation that gained messages, and one
    /// multi-row insert of the jobs — rather than six statements per conversation.
    pub async fn ingest(
        &self,
        writes: &[IngestWrite],
        job: &(dyn Fn(Uuid) -> NewJob + Sync),
    ) -> Result<Vec<IngestWriteOutcome>, StoreError> {
        let kind = self.kind();
        let t = now();
        let mut tx = self.begin_for_update().await?;

        // 1. Event ids: the ones this insert returns are new; any other (or a repeat within the batch) is a duplicate.
        let mut fresh: HashSet<String> = HashSet::new();
        let with_ids: Vec<&IngestWrite> = writes.iter().filter(|w| w.event_id.is_some()).collect();
        for chunk in with_ids.chunks(rows_per_statement(kind)) {
            let mut insert = Query::insert();
            insert.into_table(IngestEvents::Table).columns([
                IngestEvents::EventId,
                IngestEvents::ApiKeyId,
                IngestEvents::ReceivedAt,
            ]);
            for w in chunk {
                insert
                    .values([Expr::val(w.event_id.as_deref()), Expr::val(w.api_key_id), ts(kind, t)])
                    .map_err(|e| StoreError::Other(e.to_string()))?;
            }
            insert
                .on_conflict(OnConflict::column(IngestEvents::EventId).do_nothing().to_owned())
                .returning_col(IngestEvents::EventId);
            fresh.extend(tx.fetch_all::<(String,)>(&insert).await?.into_iter().map(|(id,)| id));
        }
        let mut out: Vec<Option<IngestWriteOutcome>> = Vec::with_capacity(writes.len());
        let mut proceed: Vec<usize> = Vec::with_capacity(writes.len());
        for (i, w) in writes.iter().enumerate() {
            match &w.event_id {
                Some(id) if !fresh.remove(id) => out.push(Some(IngestWriteOutcome::DuplicateEvent)),
                _ => {
                    out.push(None);
                    proceed.push(i);
                }
            }
        }

        // 2. The batch's conversations, merged per key (metadata key by key, the first user/agent id), upserted in
        //    multi-row statements in key order, so concurrent batches lock the same rows in the same order.
        type Key = (String, String, String);
        let key_of = |w: &IngestWrite| -> Key { (w.source.clone(), w.environment.clone(), w.external_id.clone()) };
        let mut merged: HashMap<Key, IngestWrite> = HashMap::new();
        for &i in &proceed {
            let w = &writes[i];
            match merged.get_mut(&key_of(w)) {
                None => {
                    merged.insert(key_of(w), IngestWrite { messages: Vec::new(), ..w.clone() });
                }
                Some(m) => {
                    m.user_id = m.user_id.take().or_else(|| w.user_id.clone());
                    m.agent_id = m.agent_id.take().or_else(|| w.agent_id.clone());
                    if let (Some(into), Some(from)) = (m.metadata.as_object_mut(), w.metadata.as_object()) {
                        into.extend(from.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
            }
        }
        let mut unique: Vec<(Key, IngestWrite)> = merged.into_iter().collect();
        unique.sort_by(|a, b| a.0.cmp(&b.0));
        let mut ids: HashMap<Key, Uuid> = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(rows_per_statement(kind)) {
            let rows: Vec<&IngestWrite> = chunk.iter().map(|(_, w)| w).collect();
            for (id, source, environment, external_id) in self.upsert_ingested(&mut tx, &rows, t).await? {
                ids.insert((source, environment, external_id), id);
            }
        }
        let mut conversation_of: Vec<Option<Uuid>> = vec![None; writes.len()];
        for &i in &proceed {
            conversation_of[i] = ids.get(&key_of(&writes[i])).copied();
        }

        // 3. Every message of the batch, in multi-row inserts; the rows returned are the ones stored now.
        let rows: Vec<(usize, &IngestedMessage)> =
            proceed.iter().flat_map(|&i| writes[i].messages.iter().map(move |m| (i, m))).collect();
        let mut stored: HashMap<(Uuid, String), OffsetDateTime> = HashMap::new();
        for chunk in rows.chunks(rows_per_statement(kind)) {
            let mut insert = Query::insert();
            insert.into_table(Messages::Table).columns(MESSAGE_COLUMNS);
            for (i, m) in chunk {
                let conversation_id = conversation_of[*i].unwrap_or_default();
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
                .returning(Query::returning().columns([
                    Messages::ConversationId,
                    Messages::ExternalId,
                    Messages::CreatedAt,
                ]));
            for (c, e, at) in tx.fetch_all::<(Uuid, String, OffsetDateTime)>(&insert).await? {
                stored.insert((c, e), at);
            }
        }

        // 4. Outcomes per write (a message stored now counts for the first write that carried it), then one
        //    rollup per conversation that gained messages, the jobs, and the event → conversation links.
        let mut gained: HashMap<Uuid, (i64, OffsetDateTime, OffsetDateTime)> = HashMap::new();
        let mut signatures: HashMap<Uuid, Signature> = HashMap::new();
        for &i in &proceed {
            let conversation_id = conversation_of[i].unwrap_or_default();
            let mut inserted = 0u64;
            for m in &writes[i].messages {
                if let Some(at) = stored.remove(&(conversation_id, m.external_id.clone())) {
                    inserted += 1;
                    signatures.entry(conversation_id).or_default().add(&m.content);
                    let e = gained.entry(conversation_id).or_insert((0, at, at));
                    e.0 += 1;
                    e.1 = Ord::min(e.1, at);
                    e.2 = Ord::max(e.2, at);
                }
            }
            let duplicates = writes[i].messages.len() as u64 - inserted;
            out[i] = Some(IngestWriteOutcome::Stored { conversation_id, inserted, duplicates });
        }
        let mut gained: Vec<(Uuid, i64, OffsetDateTime, OffsetDateTime)> =
            gained.into_iter().map(|(id, (n, first, last))| (id, n, first, last)).collect();
        gained.sort_by_key(|g| g.0);
        for chunk in gained.chunks(rows_per_statement(kind)) {
            tx.execute(&rollup_update_many(kind, chunk)).await?;
        }
        let mut signatures: Vec<(Uuid, Signature)> = signatures.into_iter().collect();
        signatures.sort_by_key(|s| s.0);
        for chunk in signatures.chunks(rows_per_statement(kind)) {
            tx.execute(&text_signature::or_update(chunk)).await?;
        }
        let jobs: Vec<NewJob> = gained.iter().map(|g| job(g.0)).collect();
        self.enqueue_many_in(&mut tx, &jobs).await?;
        let links: Vec<(&str, Uuid)> =
            proceed.iter().filter_map(|&i| Some((writes[i].event_id.as_deref()?, conversation_of[i]?))).collect();
        for chunk in links.chunks(rows_per_statement(kind)) {
            let mut case = Expr::case(Expr::col(IngestEvents::EventId).eq(chunk[0].0), Expr::val(chunk[0].1));
            for (event, conversation) in &chunk[1..] {
                case = case.case(Expr::col(IngestEvents::EventId).eq(*event), Expr::val(*conversation));
            }
            let link = Query::update()
                .table(IngestEvents::Table)
                .value(IngestEvents::ConversationId, case.finally(Expr::col(IngestEvents::ConversationId)))
                .and_where(Expr::col(IngestEvents::EventId).is_in(chunk.iter().map(|(e, _)| *e)))
                .to_owned();
            tx.execute(&link).await?;
        }
        tx.commit().await?;
        Ok(out.into_iter().map(|o| o.unwrap_or(IngestWriteOutcome::DuplicateEvent)).collect())
    }

    /// Inserts or updates ingested conversations (distinct keys) in one statement; returns `(id, source,
    /// environment, external_id)` of each.
    async fn upsert_ingested(
        &self,
        tx: &mut Tx,
        rows: &[&IngestWrite],
        t: OffsetDateTime,
    ) -> Result<Vec<(Uuid, String, String, String)>, StoreError> {
        let kind = self.kind();
        let excluded = |c: Conversations| Expr::col((Alias::new("excluded"), c));
        let current = |c: Conversations| Expr::col((Conversations::Table, c));
        let mut upsert = Query::insert();
        upsert.into_table(Conversations::Table).columns(CONVERSATION_COLUMNS);
        for w in rows {
            upsert
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
                .map_err(|e| StoreError::Other(e.to_string()))?;
        }
        upsert
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
            .returning(Query::returning().columns([
                Conversations::Id,
                Conversations::Source,
                Conversations::Environment,
                Conversations::ExternalId,
            ]));
        let out = tx.fetch_all::<(Uuid, String, String, String)>(&upsert).await?;
        if out.len() != rows.len() {
            return Err(StoreError::Other(format!("upserted {} of {} conversations", out.len(), rows.len())));
        }
        Ok(out)
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
