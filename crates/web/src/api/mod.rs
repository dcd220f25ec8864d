//! JSON API handlers, one file per resource. Handlers parse, call the domain, and map the result: no SQL,
//! no business rules.

pub mod admin;
pub mod analytics;
pub mod chat;
pub mod conversations;
pub mod failures;
pub mod health;
pub mod ingest;
pub mod llm_calls;
pub mod memories;
pub(crate) mod query;
pub mod saved_views;
pub mod session_report;
pub mod sessions;
pub mod settings;
