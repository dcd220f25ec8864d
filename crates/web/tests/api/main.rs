//! Integration tests of the HTTP API: the real app on a random port, on SQLite and PostgreSQL.

mod errors;
mod platform;
mod returning;
mod sessions;
