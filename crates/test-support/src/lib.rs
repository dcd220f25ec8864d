//! Test scaffolding shared by every crate's integration tests: real databases (a temp SQLite file, or a fresh
//! PostgreSQL schema when `TEST_DATABASE_URL` is set) and the real app on a random port. Never used by
//! production code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test scaffolding: failing loudly is the point

pub mod app;
pub mod db;
pub mod node;

pub use app::{TestApp, expect_error, expect_json};
pub use db::{Backend, TestDb};

/// Declares each named `async fn(TestDb)` as two tests, `<name>::sqlite` and `<name>::postgres`.
/// Without `TEST_DATABASE_URL` the PostgreSQL variant prints that it was skipped and passes.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::TestDb::create($crate::Backend::Sqlite).await;
                    super::$name(db.expect("SQLite is always available")).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    match $crate::TestDb::create($crate::Backend::Postgres).await {
                        Some(db) => super::$name(db).await,
                        None => $crate::db::say_skipped(concat!(module_path!(), "::postgres")),
                    }
                }
            }
        )*
    };
}
