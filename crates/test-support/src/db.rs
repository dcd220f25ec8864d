//! Per-test databases. SQLite: a file in a temp folder. PostgreSQL: a new schema in the database named by
//! `TEST_DATABASE_URL`, selected through the connection's `search_path`, dropped when the `TestDb` is dropped.
//! Tests therefore pass when run twice and in parallel.

use std::io::Write;

use mentorfy_store::{Store, create_scratch_schema, drop_scratch_schema};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub backend: Backend,
    /// A `DATABASE_URL` for this test's database, usable by the app and the CLI alike.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg_cleanup: Option<(String, String)>,
}

/// Written straight to stderr so it shows even when the test harness captures output.
pub fn say_skipped(test: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: TEST_DATABASE_URL is not set, PostgreSQL variant not run");
}

impl TestDb {
    /// `None` only for PostgreSQL without `TEST_DATABASE_URL`.
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Some(Self { backend, url, _dir: Some(dir), pg_cleanup: None })
            }
            Backend::Postgres => {
                let admin = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
                let (url, schema) =
                    create_scratch_schema(&admin, "t").await.expect("create a schema in TEST_DATABASE_URL");
                Some(Self { backend, url, _dir: None, pg_cleanup: Some((admin, schema)) })
            }
        }
    }

    /// A connected, migrated store on this database.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url, 8).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, schema)) = self.pg_cleanup.take() else { return };
        // Drop runs inside the test's runtime, which may be shutting down: use a runtime of our own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                let _ = drop_scratch_schema(&admin, &schema).await;
            });
        })
        .join();
    }
}
