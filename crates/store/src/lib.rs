//! All SQL of Mentorfy, for SQLite and PostgreSQL. Queries are built once with sea-query and run on whichever
//! pool `DATABASE_URL` chose; dialect differences are fenced in `dialect.rs`. No other crate may contain SQL,
//! and nothing here knows HTTP.

mod db;
mod dialect;
mod error;
mod sessions;

pub use db::{Store, StoreKind, create_scratch_schema, drop_scratch_schema};
pub use error::StoreError;
