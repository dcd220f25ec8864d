//! The HTTP face of Mentorfy: axum routes, extractors, the error envelope, OpenAPI and the docs page.
//! The only crate that knows axum. Handlers stay thin: parse, call a domain crate, map the result.
// `AppError` is ~150 bytes; it only travels on the error path, where a copy costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod admin_auth;
pub mod api;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod judge;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod state;
pub mod ui_stream;

pub use error::AppError;
pub use server::{StartupError, app, prepare, serve};
pub use state::AppState;
