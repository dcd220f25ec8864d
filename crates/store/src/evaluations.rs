//! Conversation evaluations (the optional LLM judge, issue 6), one per conversation and evaluation name.

use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::Store;
use crate::dialect::{now, ts};
use crate::error::StoreError;

#[derive(sea_query::Iden, Clone, Copy)]
enum Evaluations {
    Table,
    Id,
    ConversationId,
    Name,
    ScoreValue,
    ScoreLabel,
    Explanation,
    ErrorType,
    Evaluator,
    LlmCallId,
    ResponseId,
    CreatedAt,
}

const COLUMNS: [Evaluations; 11] = [
    Evaluations::Id,
    Evaluations::ConversationId,
    Evaluations::Name,
    Evaluations::ScoreValue,
    Evaluations::ScoreLabel,
    Evaluations::Explanation,
    Evaluations::ErrorType,
    Evaluations::Evaluator,
    Evaluations::LlmCallId,
    Evaluations::ResponseId,
    Evaluations::CreatedAt,
];

/// A stored evaluation, shaped like `gen_ai.evaluation.result`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EvaluationRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub name: String,
    /// 0..1; `None` when the evaluation failed (then `error_type` says why).
    pub score_value: Option<f64>,
    pub score_label: Option<String>,
    pub explanation: Option<String>,
    pub error_type: Option<String>,
    pub evaluator: String,
    pub llm_call_id: Option<Uuid>,
    pub response_id: Option<String>,
    pub created_at: OffsetDateTime,
}

/// An evaluation to store (the id and time are the store's).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvaluation {
    pub conversation_id: Uuid,
    pub name: String,
    pub score_value: Option<f64>,
    pub score_label: Option<String>,
    pub explanation: Option<String>,
    pub error_type: Option<String>,
    pub evaluator: String,
    pub llm_call_id: Option<Uuid>,
    pub response_id: Option<String>,
}

impl Store {
    /// Stores an evaluation, replacing the conversation's previous one of the same name. `Ok(false)` when the
    /// conversation no longer exists.
    pub async fn upsert_evaluation(&self, e: &NewEvaluation) -> Result<bool, StoreError> {
        if e.score_value.is_some_and(|s| !s.is_finite() || !(0.0..=1.0).contains(&s)) {
            return Err(StoreError::Conflict(format!("score_value must be within 0..1, not {:?}", e.score_value)));
        }
        let kind = self.kind();
        let exists = Query::select()
            .expr(Expr::val(1))
            .from(crate::conversations::Conversations::Table)
            .and_where(Expr::col(crate::conversations::Conversations::Id).eq(e.conversation_id))
            .to_owned();
        if self.fetch_optional::<(i32,)>(&exists).await?.is_none() {
            return Ok(false);
        }
        let stmt = Query::insert()
            .into_table(Evaluations::Table)
            .columns(COLUMNS)
            .values([
                Expr::val(Uuid::now_v7()),
                Expr::val(e.conversation_id),
                Expr::val(e.name.as_str()),
                Expr::val(e.score_value),
                Expr::val(e.score_label.as_deref()),
                Expr::val(e.explanation.as_deref()),
                Expr::val(e.error_type.as_deref()),
                Expr::val(e.evaluator.as_str()),
                Expr::val(e.llm_call_id),
                Expr::val(e.response_id.as_deref()),
                ts(kind, now()),
            ])
            .map_err(|err| StoreError::Other(err.to_string()))?
            .on_conflict(
                OnConflict::columns([Evaluations::ConversationId, Evaluations::Name])
                    .update_columns([
                        Evaluations::ScoreValue,
                        Evaluations::ScoreLabel,
                        Evaluations::Explanation,
                        Evaluations::ErrorType,
                        Evaluations::Evaluator,
                        Evaluations::LlmCallId,
                        Evaluations::ResponseId,
                        Evaluations::CreatedAt,
                    ])
                    .to_owned(),
            )
            .to_owned();
        self.execute(&stmt).await?;
        Ok(true)
    }

    /// A conversation's evaluations, by name.
    pub async fn list_evaluations(&self, conversation_id: Uuid) -> Result<Vec<EvaluationRow>, StoreError> {
        let stmt = Query::select()
            .columns(COLUMNS)
            .from(Evaluations::Table)
            .and_where(Expr::col(Evaluations::ConversationId).eq(conversation_id))
            .order_by(Evaluations::Name, Order::Asc)
            .to_owned();
        self.fetch_all::<EvaluationRow>(&stmt).await
    }
}
