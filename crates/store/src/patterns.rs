//! Usage patterns (issue 6): what the pattern analysis reads (the opening user messages of conversations, their
//! health and failures, cached conversation embeddings) and what it writes (a run, its patterns and their members,
//! in one transaction, keeping the last few runs).

use std::collections::HashMap;

use sea_query::{Alias, Expr, ExprTrait, Func, OnConflict, Order, Query, WindowStatement};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::conversations::{Conversations, Messages};
use crate::db::Store;
use crate::dialect::{now, ts};
use crate::error::StoreError;

#[derive(sea_query::Iden, Clone, Copy)]
enum PatternRuns {
    Table,
    Id,
    Trigger,
    WindowFrom,
    WindowTo,
    Representation,
    Conversations,
    Clustered,
    Patterns,
    Params,
    StartedAt,
    FinishedAt,
}

#[derive(sea_query::Iden, Clone, Copy)]
enum UsagePatterns {
    Table,
    Id,
    RunId,
    Label,
    Keywords,
    Size,
    AvgHealth,
    FailureRate,
    Examples,
    Method,
    CreatedAt,
    UpdatedAt,
}

#[derive(sea_query::Iden, Clone, Copy)]
enum PatternConversations {
    Table,
    PatternId,
    ConversationId,
    Similarity,
}

#[derive(sea_query::Iden, Clone, Copy)]
enum ConversationEmbeddings {
    Table,
    ConversationId,
    Model,
    Dims,
    Embedding,
    TextHash,
    CreatedAt,
}

/// Ids per `IN (…)` list when reading by conversation.
const IDS_PER_STATEMENT: usize = 500;

/// A conversation as the pattern analysis sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternSource {
    pub conversation_id: Uuid,
    /// Its first user messages, oldest first (superseded ones left out).
    pub user_messages: Vec<String>,
    pub health_score: Option<f64>,
    pub failure_count: i64,
    pub started_at: OffsetDateTime,
}

/// A cached embedding of what the user came for.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ConversationEmbedding {
    pub conversation_id: Uuid,
    pub model: String,
    /// Little-endian `f32` values.
    pub embedding: Vec<u8>,
    /// SHA-256 (hex) of the text that was embedded.
    pub text_hash: String,
}

/// One pattern of a run, with its members.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternWrite {
    pub label: String,
    /// A JSON array of `{term, weight}`.
    pub keywords: Value,
    pub avg_health: Option<f64>,
    pub failure_rate: Option<f64>,
    /// A JSON array of `{conversation_id, excerpt, similarity}`.
    pub examples: Value,
    /// `ctfidf` or `llm`.
    pub method: String,
    /// Member conversations and their similarity to the pattern.
    pub members: Vec<(Uuid, f64)>,
}

/// A finished pattern analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct PatternRunWrite {
    pub id: Uuid,
    /// `scheduled` or `manual`.
    pub trigger: String,
    pub window_from: OffsetDateTime,
    pub window_to: OffsetDateTime,
    pub representation: String,
    /// Conversations analysed (members of a pattern or not).
    pub conversations: i64,
    /// A JSON object.
    pub params: Value,
    pub started_at: OffsetDateTime,
    pub patterns: Vec<PatternWrite>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PatternRunRow {
    pub id: Uuid,
    pub trigger: String,
    pub window_from: OffsetDateTime,
    pub window_to: OffsetDateTime,
    pub representation: String,
    pub conversations: i64,
    pub clustered: i64,
    pub patterns: i64,
    #[sqlx(json)]
    pub params: Value,
    pub started_at: OffsetDateTime,
    pub finished_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UsagePatternRow {
    pub id: Uuid,
    pub run_id: Uuid,
    pub label: String,
    #[sqlx(json)]
    pub keywords: Value,
    pub size: i64,
    pub avg_health: Option<f64>,
    pub failure_rate: Option<f64>,
    #[sqlx(json)]
    pub examples: Value,
    pub method: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

const RUN_COLUMNS: [PatternRuns; 11] = [
    PatternRuns::Id,
    PatternRuns::Trigger,
    PatternRuns::WindowFrom,
    PatternRuns::WindowTo,
    PatternRuns::Representation,
    PatternRuns::Conversations,
    PatternRuns::Clustered,
    PatternRuns::Patterns,
    PatternRuns::Params,
    PatternRuns::StartedAt,
    PatternRuns::FinishedAt,
];

const PATTERN_COLUMNS: [UsagePatterns; 11] = [
    UsagePatterns::Id,
    UsagePatterns::RunId,
    UsagePatterns::Label,
    UsagePatterns::Keywords,
    UsagePatterns::Size,
    UsagePatterns::AvgHealth,
    UsagePatterns::FailureRate,
    UsagePatterns::Examples,
    UsagePatterns::Method,
    UsagePatterns::CreatedAt,
    UsagePatterns::UpdatedAt,
];

impl Store {
    /// Conversations that started in `[from, to)`, the most recent `limit`, each with its first `user_turns`
    /// user messages; conversations without a user message are left out. Oldest first.
    pub async fn pattern_sources(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        user_turns: u32,
        limit: u64,
    ) -> Result<Vec<PatternSource>, StoreError> {
        let kind = self.kind();
        let convs = Query::select()
            .columns([
                Conversations::Id,
                Conversations::HealthScore,
                Conversations::FailureCount,
                Conversations::StartedAt,
            ])
            .from(Conversations::Table)
            .and_where(Expr::col(Conversations::StartedAt).gte(ts(kind, from)))
            .and_where(Expr::col(Conversations::StartedAt).lt(ts(kind, to)))
            .order_by(Conversations::StartedAt, Order::Desc)
            .order_by(Conversations::Id, Order::Desc)
            .limit(limit)
            .to_owned();
        let mut rows = self.fetch_all::<(Uuid, Option<f64>, i64, OffsetDateTime)>(&convs).await?;
        rows.reverse();
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let mut texts = self.first_user_messages(&ids, user_turns).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(conversation_id, health_score, failure_count, started_at)| {
                let user_messages = texts.remove(&conversation_id)?;
                Some(PatternSource { conversation_id, user_messages, health_score, failure_count, started_at })
            })
            .collect())
    }

    /// The first `user_turns` user messages of each of these conversations, oldest first (superseded ones left
    /// out); conversations without one are absent.
    pub async fn first_user_messages(
        &self,
        ids: &[Uuid],
        user_turns: u32,
    ) -> Result<HashMap<Uuid, Vec<String>>, StoreError> {
        let mut texts: HashMap<Uuid, Vec<String>> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let window = WindowStatement::partition_by(Messages::ConversationId)
                .order_by(Messages::CreatedAt, Order::Asc)
                .order_by(Messages::Id, Order::Asc)
                .to_owned();
            let numbered = Query::select()
                .columns([Messages::ConversationId, Messages::Content])
                .expr_window_as(Func::cust("ROW_NUMBER"), window, Alias::new("rn"))
                .from(Messages::Table)
                .and_where(Expr::col(Messages::ConversationId).is_in(chunk.iter().copied()))
                .and_where(Expr::col(Messages::Role).eq("user"))
                .and_where(Expr::col(Messages::Status).ne("superseded"))
                .to_owned();
            let first = Query::select()
                .columns([Alias::new("conversation_id"), Alias::new("content")])
                .from_subquery(numbered, Alias::new("numbered"))
                .and_where(Expr::col(Alias::new("rn")).lte(i64::from(user_turns)))
                .order_by(Alias::new("conversation_id"), Order::Asc)
                .order_by(Alias::new("rn"), Order::Asc)
                .to_owned();
            for (id, content) in self.fetch_all::<(Uuid, String)>(&first).await? {
                texts.entry(id).or_default().push(content);
            }
        }
        Ok(texts)
    }

    /// The cached embeddings of these conversations (any model; the caller checks model and text hash).
    pub async fn conversation_embeddings(&self, ids: &[Uuid]) -> Result<Vec<ConversationEmbedding>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let stmt = Query::select()
                .columns([
                    ConversationEmbeddings::ConversationId,
                    ConversationEmbeddings::Model,
                    ConversationEmbeddings::Embedding,
                    ConversationEmbeddings::TextHash,
                ])
                .from(ConversationEmbeddings::Table)
                .and_where(Expr::col(ConversationEmbeddings::ConversationId).is_in(chunk.iter().copied()))
                .to_owned();
            out.extend(self.fetch_all::<ConversationEmbedding>(&stmt).await?);
        }
        Ok(out)
    }

    /// Stores embeddings, replacing a conversation's previous one. A conversation deleted meanwhile is skipped.
    pub async fn upsert_conversation_embeddings(&self, rows: &[ConversationEmbedding]) -> Result<(), StoreError> {
        let kind = self.kind();
        let t = now();
        for chunk in rows.chunks(crate::ingest::rows_per_statement(kind)) {
            if let Some(r) = chunk.iter().find(|r| r.embedding.is_empty() || r.embedding.len() % 4 != 0) {
                return Err(StoreError::Other(format!(
                    "embedding of conversation {} is {} bytes, not a non-empty multiple of 4",
                    r.conversation_id,
                    r.embedding.len()
                )));
            }
            // Only conversations that still exist: a foreign-key violation would fail the whole statement.
            let existing = Query::select()
                .column(Conversations::Id)
                .from(Conversations::Table)
                .and_where(Expr::col(Conversations::Id).is_in(chunk.iter().map(|r| r.conversation_id)))
                .to_owned();
            let existing: std::collections::HashSet<Uuid> =
                self.fetch_all::<(Uuid,)>(&existing).await?.into_iter().map(|(id,)| id).collect();
            if existing.is_empty() {
                continue;
            }
            let mut insert = Query::insert()
                .into_table(ConversationEmbeddings::Table)
                .columns([
                    ConversationEmbeddings::ConversationId,
                    ConversationEmbeddings::Model,
                    ConversationEmbeddings::Dims,
                    ConversationEmbeddings::Embedding,
                    ConversationEmbeddings::TextHash,
                    ConversationEmbeddings::CreatedAt,
                ])
                .to_owned();
            for r in chunk.iter().filter(|r| existing.contains(&r.conversation_id)) {
                let dims = i64::try_from(r.embedding.len() / 4).unwrap_or(i64::MAX);
                insert
                    .values([
                        r.conversation_id.into(),
                        r.model.clone().into(),
                        dims.into(),
                        r.embedding.clone().into(),
                        r.text_hash.clone().into(),
                        ts(kind, t),
                    ])
                    .map_err(|e| StoreError::Other(e.to_string()))?;
            }
            insert.on_conflict(
                OnConflict::column(ConversationEmbeddings::ConversationId)
                    .update_columns([
                        ConversationEmbeddings::Model,
                        ConversationEmbeddings::Dims,
                        ConversationEmbeddings::Embedding,
                        ConversationEmbeddings::TextHash,
                        ConversationEmbeddings::CreatedAt,
                    ])
                    .to_owned(),
            );
            self.execute(&insert).await?;
        }
        Ok(())
    }

    /// Stores a finished run with its patterns and members in one transaction, then deletes all but the newest
    /// `keep_runs` runs (their patterns and memberships with them). Member conversations deleted since the analysis
    /// read them are skipped.
    pub async fn save_pattern_run(&self, run: &PatternRunWrite, keep_runs: u64) -> Result<(), StoreError> {
        let kind = self.kind();
        let t = now();
        let per_statement = crate::ingest::rows_per_statement(kind);
        let clustered: usize = run.patterns.iter().map(|p| p.members.len()).sum();
        let mut tx = self.begin_for_update().await?;
        let insert_run = Query::insert()
            .into_table(PatternRuns::Table)
            .columns(RUN_COLUMNS)
            .values([
                run.id.into(),
                run.trigger.clone().into(),
                ts(kind, run.window_from),
                ts(kind, run.window_to),
                run.representation.clone().into(),
                run.conversations.into(),
                i64::try_from(clustered).unwrap_or(i64::MAX).into(),
                i64::try_from(run.patterns.len()).unwrap_or(i64::MAX).into(),
                run.params.clone().into(),
                ts(kind, run.started_at),
                ts(kind, t),
            ])
            .map_err(|e| StoreError::Other(e.to_string()))?
            .to_owned();
        tx.execute(&insert_run).await?;
        let ids: Vec<Uuid> = run.patterns.iter().map(|_| Uuid::now_v7()).collect();
        for (chunk, ids) in run.patterns.chunks(per_statement).zip(ids.chunks(per_statement)) {
            let mut insert = Query::insert().into_table(UsagePatterns::Table).columns(PATTERN_COLUMNS).to_owned();
            for (p, id) in chunk.iter().zip(ids) {
                insert
                    .values([
                        (*id).into(),
                        run.id.into(),
                        p.label.clone().into(),
                        p.keywords.clone().into(),
                        i64::try_from(p.members.len()).unwrap_or(i64::MAX).into(),
                        p.avg_health.map(|h| h.clamp(0.0, 100.0)).into(),
                        p.failure_rate.map(|r| r.clamp(0.0, 1.0)).into(),
                        p.examples.clone().into(),
                        p.method.clone().into(),
                        ts(kind, t),
                        ts(kind, t),
                    ])
                    .map_err(|e| StoreError::Other(e.to_string()))?;
            }
            tx.execute(&insert).await?;
        }
        let members: Vec<(Uuid, Uuid, f64)> = run
            .patterns
            .iter()
            .zip(&ids)
            .flat_map(|(p, id)| p.members.iter().map(move |(c, s)| (*id, *c, *s)))
            .collect();
        for chunk in members.chunks(per_statement) {
            // INSERT … SELECT over the conversations that still exist, so a deletion meanwhile is no error.
            let mut insert = Query::insert()
                .into_table(PatternConversations::Table)
                .columns([
                    PatternConversations::PatternId,
                    PatternConversations::ConversationId,
                    PatternConversations::Similarity,
                ])
                .to_owned();
            let mut case_pattern = sea_query::CaseStatement::new();
            let mut case_similarity = sea_query::CaseStatement::new();
            for (pattern, conversation, similarity) in chunk {
                let is = || Expr::col(Conversations::Id).eq(*conversation);
                case_pattern = case_pattern.case(is(), Expr::val(*pattern));
                case_similarity = case_similarity.case(is(), Expr::val(*similarity));
            }
            let select = Query::select()
                .expr(case_pattern)
                .column(Conversations::Id)
                .expr(case_similarity)
                .from(Conversations::Table)
                .and_where(Expr::col(Conversations::Id).is_in(chunk.iter().map(|m| m.1)))
                .to_owned();
            insert.select_from(select).map_err(|e| StoreError::Other(e.to_string()))?;
            tx.execute(&insert).await?;
        }
        // Older runs beyond the newest `keep_runs` go, with their patterns (memberships cascade).
        let old = Query::select()
            .column(PatternRuns::Id)
            .from(PatternRuns::Table)
            .order_by(PatternRuns::FinishedAt, Order::Desc)
            .order_by(PatternRuns::Id, Order::Desc)
            .limit(i64::MAX as u64)
            .offset(keep_runs)
            .to_owned();
        let old_ids: Vec<Uuid> = tx.fetch_all::<(Uuid,)>(&old).await?.into_iter().map(|(id,)| id).collect();
        if !old_ids.is_empty() {
            let del_patterns = Query::delete()
                .from_table(UsagePatterns::Table)
                .and_where(Expr::col(UsagePatterns::RunId).is_in(old_ids.iter().copied()))
                .to_owned();
            tx.execute(&del_patterns).await?;
            let del_runs = Query::delete()
                .from_table(PatternRuns::Table)
                .and_where(Expr::col(PatternRuns::Id).is_in(old_ids))
                .to_owned();
            tx.execute(&del_runs).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest finished run, if any.
    pub async fn latest_pattern_run(&self) -> Result<Option<PatternRunRow>, StoreError> {
        let stmt = Query::select()
            .columns(RUN_COLUMNS)
            .from(PatternRuns::Table)
            .order_by(PatternRuns::FinishedAt, Order::Desc)
            .order_by(PatternRuns::Id, Order::Desc)
            .limit(1)
            .to_owned();
        self.fetch_optional::<PatternRunRow>(&stmt).await
    }

    /// The patterns of a run, largest first.
    pub async fn list_patterns(&self, run_id: Uuid) -> Result<Vec<UsagePatternRow>, StoreError> {
        let stmt = Query::select()
            .columns(PATTERN_COLUMNS)
            .from(UsagePatterns::Table)
            .and_where(Expr::col(UsagePatterns::RunId).eq(run_id))
            .order_by(UsagePatterns::Size, Order::Desc)
            .order_by(UsagePatterns::Id, Order::Asc)
            .to_owned();
        self.fetch_all::<UsagePatternRow>(&stmt).await
    }

    /// The member conversations of a pattern with their similarity, most similar first.
    pub async fn pattern_members(&self, pattern_id: Uuid) -> Result<Vec<(Uuid, Option<f64>)>, StoreError> {
        let stmt = Query::select()
            .columns([PatternConversations::ConversationId, PatternConversations::Similarity])
            .from(PatternConversations::Table)
            .and_where(Expr::col(PatternConversations::PatternId).eq(pattern_id))
            .order_by(PatternConversations::Similarity, Order::Desc)
            .order_by(PatternConversations::ConversationId, Order::Asc)
            .to_owned();
        self.fetch_all::<(Uuid, Option<f64>)>(&stmt).await
    }
}
