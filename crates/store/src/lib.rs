//! All SQL of Mentorfy, for SQLite and PostgreSQL. Queries are built once with sea-query and run on whichever
//! pool `DATABASE_URL` chose; dialect differences are fenced in `dialect.rs`. No other crate may contain SQL,
//! and nothing here knows HTTP.

mod admin;
mod alerts;
mod analysis;
mod analytics;
mod conversation_list;
mod conversations;
mod db;
mod dialect;
mod error;
mod evaluations;
mod failure_list;
mod ingest;
mod jobs;
mod llm_calls;
mod memories;
mod pattern_trends;
mod patterns;
mod rollups;
mod saved_views;
mod session_report;
mod sessions;
mod text_signature;
mod trends;

pub use admin::*;
pub use alerts::{AlertEventRow, AlertRuleState, AlertSettings, FailureRate, NewAlertEvent};
pub use analysis::{AnalysisOutcome, AnalysisWrite, FailureRow, FailureWrite};
pub use analytics::{Bucket, FailureCount, PeriodStats};
pub use conversation_list::{ConversationFilter, ConversationSort, SortKey};
pub use conversations::{ConversationRow, InsertOutcome, MessageRow, NewConversation, NewMessage};
pub use db::{Store, StoreKind, create_scratch_schema, drop_scratch_schema};
pub use dialect::now;
pub use error::StoreError;
pub use evaluations::{EvaluationRow, NewEvaluation};
pub use failure_list::{FailureListFilter, FailureListRow};
pub use ingest::{IngestWrite, IngestWriteOutcome, IngestedMessage};
pub use jobs::*;
pub use llm_calls::{LlmCallFigures, LlmCallFilter, LlmCallRow};
pub use memories::*;
pub use patterns::{
    ConversationEmbedding, PatternRunRow, PatternRunWrite, PatternSource, PatternWrite, UsagePatternRow,
};
pub use rollups::{RollupRefresh, RollupStatus};
pub use saved_views::SavedViewRow;
pub use session_report::{SessionFunnel, SessionLeadFilter};
pub use trends::HealthPoint;
