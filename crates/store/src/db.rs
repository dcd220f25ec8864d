//! Connection pools for both backends, migrations, and the dispatch that runs one sea-query statement on
//! whichever backend is configured.

use std::str::FromStr;
use std::time::Duration;

use sea_query_sqlx::SqlxBinder;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{AssertSqlSafe, FromRow, PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::error::StoreError;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database. Cheap to clone (pools are shared handles).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// SQLite allows one writer at a time, so every write of this process goes through one dedicated
    /// connection: writers queue on the pool instead of racing for the file lock (where SQLite's busy handler
    /// sleeps for milliseconds), and that connection's page cache stays warm. `busy_timeout` still arbitrates
    /// between processes. `None` on PostgreSQL, where every pooled connection writes.
    sqlite_writer: Option<Pool>,
    /// Below this many trigram-index candidates (SQLite) a text search skips the signature window
    /// (`conversation_list.rs`); tests set 0 to exercise the window on small data.
    pub(crate) index_first_below: u64,
}

/// An open transaction on either backend.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Rows that decode on both backends.
pub(crate) trait AnyRow: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> AnyRow for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// Runs `$body` with `$exec` bound to the backend's executor and `$qb` to its query builder. The body is
/// written once and compiled for each backend.
macro_rules! dispatch {
    ($target:expr, |$exec:ident, $qb:ident| $body:expr) => {
        match $target {
            Target::Pool(Pool::Sqlite(p)) => {
                let $exec = p;
                let $qb = sea_query::SqliteQueryBuilder;
                $body
            }
            Target::Pool(Pool::Postgres(p)) => {
                let $exec = p;
                let $qb = sea_query::PostgresQueryBuilder;
                $body
            }
            Target::Tx(Tx::Sqlite(tx)) => {
                let $exec = &mut **tx;
                let $qb = sea_query::SqliteQueryBuilder;
                $body
            }
            Target::Tx(Tx::Postgres(tx)) => {
                let $exec = &mut **tx;
                let $qb = sea_query::PostgresQueryBuilder;
                $body
            }
        }
    };
}

enum Target<'a> {
    Pool(&'a Pool),
    Tx(&'a mut Tx),
}

async fn fetch_optional<T: AnyRow>(target: Target<'_>, stmt: &impl SqlxBinder) -> Result<Option<T>, StoreError> {
    dispatch!(target, |exec, qb| {
        let (sql, values) = stmt.build_sqlx(qb);
        Ok(sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_optional(exec).await?)
    })
}

async fn fetch_all<T: AnyRow>(target: Target<'_>, stmt: &impl SqlxBinder) -> Result<Vec<T>, StoreError> {
    dispatch!(target, |exec, qb| {
        let (sql, values) = stmt.build_sqlx(qb);
        Ok(sqlx::query_as_with::<_, T, _>(AssertSqlSafe(sql), values).fetch_all(exec).await?)
    })
}

async fn execute(target: Target<'_>, stmt: &impl SqlxBinder) -> Result<u64, StoreError> {
    dispatch!(target, |exec, qb| {
        let (sql, values) = stmt.build_sqlx(qb);
        Ok(sqlx::query_with(AssertSqlSafe(sql), values).execute(exec).await?.rows_affected())
    })
}

impl Store {
    /// Opens the database named by `url` (`sqlite://…` or `postgres://…`). A SQLite file and its folder are
    /// created when missing. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::Config(format!("DATABASE_URL: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
                // Commits never stop to checkpoint; `Store::checkpoint` does it in the background instead.
                .pragma("wal_autocheckpoint", "0")
                // Reads map the file instead of copying each page through a read() call into a 2 MB page cache
                // per connection: the list walks and rollup reads at 100,000 conversations spent most of their
                // time in those calls (docs/PERFORMANCE.md, "Text signatures"). SQLite caps it at its build's
                // maximum (2 GB); the rest of a larger file is read as before.
                .pragma("mmap_size", "2147483648");
            let path = opts.get_filename();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Config(format!("DATABASE_URL: cannot create {}: {e}", dir.display())))?;
            }
            let open = |size: u32, opts: SqliteConnectOptions| async move {
                SqlitePoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))
            };
            // The writer first: it creates the file and switches it to WAL before readers open it.
            let writer = open(1, opts.clone()).await?;
            let readers = open(max_connections, opts).await?;
            return Ok(Self {
                pool: Pool::Sqlite(readers),
                sqlite_writer: Some(Pool::Sqlite(writer)),
                index_first_below: crate::conversation_list::FEW_CANDIDATES,
            });
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(format!("DATABASE_URL: {e}")))?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(5))
                // Session settings (not startup options, which poolers such as PgBouncer and Supavisor refuse):
                // - no JIT: every statement here is meant to take milliseconds, but a walk with an EXISTS probe (the
                //   conversation list's text search) is costed past `jit_above_cost`, and compiling it took 15-20 ms
                //   of a 25 ms request;
                // - a plan per execution: after five runs of a prepared statement PostgreSQL may keep a generic
                //   plan, blind to the LIMIT and the LIKE pattern, and for the text search's window that plan
                //   hashes every message matching the pattern (38 ms) where the custom plan probes 51 (5 ms).
                //   Planning these statements takes well under a millisecond.
                // docs/PERFORMANCE.md, "Text signatures at 100,000 conversations".
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        sqlx::raw_sql("SET jit = off; SET plan_cache_mode = force_custom_plan").execute(conn).await?;
                        Ok(())
                    })
                })
                .connect_with(opts)
                .await
                .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
            Pool::Postgres(pool)
        } else {
            return Err(StoreError::Config("DATABASE_URL: use sqlite://PATH or postgres://…".into()));
        };
        Ok(Self { pool, sqlite_writer: None, index_first_below: crate::conversation_list::FEW_CANDIDATES })
    }

    /// This store with text searches never taking the trigram index first for having few candidates (SQLite),
    /// so the signature window runs on any data: for tests of the window on small data sets.
    #[doc(hidden)]
    #[must_use]
    pub fn with_signature_window_always(mut self) -> Self {
        self.index_first_below = 0;
        self
    }

    pub fn kind(&self) -> StoreKind {
        match self.pool {
            Pool::Sqlite(_) => StoreKind::Sqlite,
            Pool::Postgres(_) => StoreKind::Postgres,
        }
    }

    /// Applies pending migrations of this backend; returns the descriptions of those applied now.
    /// On PostgreSQL the migrator holds an advisory lock, so several servers starting at once are safe.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let migrator = match &self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATOR,
            Pool::Postgres(_) => &POSTGRES_MIGRATOR,
        };
        // Before the first run the bookkeeping table does not exist: nothing was applied.
        let applied = sea_query::Query::select().column("version").from("_sqlx_migrations").to_owned();
        let before: Vec<i64> =
            self.fetch_all::<(i64,)>(&applied).await.unwrap_or_default().into_iter().map(|(v,)| v).collect();
        match self.writer() {
            Pool::Sqlite(p) => migrator.run(p).await?,
            Pool::Postgres(p) => migrator.run(p).await?,
        }
        Ok(migrator
            .iter()
            .filter(|m| !before.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// True when the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            Pool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
        .map_err(StoreError::from)
    }

    /// SQLite: copies committed WAL pages into the database file without blocking writers
    /// (`wal_checkpoint(PASSIVE)`) and returns how many pages the WAL holds. Auto-checkpointing is off, because it
    /// made whichever request happened to commit the 1000th page wait for the copy and an fsync; the server runs
    /// this every second instead. PostgreSQL: nothing to do.
    pub async fn checkpoint(&self) -> Result<i64, StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => {
                let (_busy, wal_pages, _moved): (i64, i64, i64) =
                    sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(p).await?;
                Ok(wal_pages)
            }
            Pool::Postgres(_) => Ok(0),
        }
    }

    /// Refreshes the planner's statistics after a bulk load (`seed-demo`): PostgreSQL `ANALYZE` (autovacuum would
    /// get there, but until it does, a table that grew from nothing is planned as empty-or-unknown and range
    /// counts become sequential scans — 200 ms instead of 0.1 ms at 100,000 conversations); SQLite `PRAGMA
    /// optimize`, which analyses the tables whose indexes would benefit.
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        match self.kind() {
            StoreKind::Postgres => self.raw("ANALYZE").await,
            StoreKind::Sqlite => self.raw("PRAGMA optimize").await,
        }
    }

    /// Closes the pool: waits for checked-out connections to come back, then closes them.
    pub async fn close(&self) {
        for pool in [Some(&self.pool), self.sqlite_writer.as_ref()].into_iter().flatten() {
            match pool {
                Pool::Sqlite(p) => p.close().await,
                Pool::Postgres(p) => p.close().await,
            }
        }
    }

    pub(crate) async fn begin_for_update(&self) -> Result<Tx, StoreError> {
        self.begin_with(crate::dialect::begin_for_update(self.kind())).await
    }

    /// A transaction on the writer opened with `begin` (e.g. a PostgreSQL isolation level; SQLite must get a
    /// `BEGIN …` it understands).
    pub(crate) async fn begin_with(&self, begin: &'static str) -> Result<Tx, StoreError> {
        Ok(match self.writer() {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with(begin).await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin_with(begin).await?),
        })
    }

    pub(crate) async fn fetch_optional<T: AnyRow>(&self, stmt: &impl SqlxBinder) -> Result<Option<T>, StoreError> {
        fetch_optional(Target::Pool(&self.pool), stmt).await
    }

    pub(crate) async fn fetch_all<T: AnyRow>(&self, stmt: &impl SqlxBinder) -> Result<Vec<T>, StoreError> {
        fetch_all(Target::Pool(&self.pool), stmt).await
    }

    /// Runs a writing statement (on SQLite, on the writer connection).
    pub(crate) async fn execute(&self, stmt: &impl SqlxBinder) -> Result<u64, StoreError> {
        execute(Target::Pool(self.writer()), stmt).await
    }

    /// Runs a writing statement with a `RETURNING` clause (on SQLite, on the writer connection) and decodes the
    /// row it returns, if any (none, for example, when `ON CONFLICT DO NOTHING` skipped the insert).
    pub(crate) async fn write_returning<T: AnyRow>(&self, stmt: &impl SqlxBinder) -> Result<Option<T>, StoreError> {
        fetch_optional(Target::Pool(self.writer()), stmt).await
    }

    fn writer(&self) -> &Pool {
        self.sqlite_writer.as_ref().unwrap_or(&self.pool)
    }
}

impl Tx {
    pub(crate) async fn fetch_optional<T: AnyRow>(&mut self, stmt: &impl SqlxBinder) -> Result<Option<T>, StoreError> {
        fetch_optional(Target::Tx(self), stmt).await
    }

    pub(crate) async fn execute(&mut self, stmt: &impl SqlxBinder) -> Result<u64, StoreError> {
        execute(Target::Tx(self), stmt).await
    }

    pub(crate) async fn fetch_all<T: AnyRow>(&mut self, stmt: &impl SqlxBinder) -> Result<Vec<T>, StoreError> {
        fetch_all(Target::Tx(self), stmt).await
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Creates a fresh, empty PostgreSQL schema in the database at `admin_url` and returns a `DATABASE_URL` that
/// selects it (through `search_path`) together with the schema's name. For tests and benchmarks that need a
/// database of their own; pair with [`drop_scratch_schema`].
pub async fn create_scratch_schema(admin_url: &str, prefix: &str) -> Result<(String, String), StoreError> {
    if !prefix.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(StoreError::Config(format!("scratch schema prefix '{prefix}' must be lower-case letters")));
    }
    let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let store = Store::connect(admin_url, 1).await?;
    let created = store.raw(&format!("CREATE SCHEMA {schema}")).await;
    store.close().await;
    created?;
    let sep = if admin_url.contains('?') { '&' } else { '?' };
    Ok((format!("{admin_url}{sep}options=-c%20search_path%3D{schema}"), schema))
}

/// Drops a schema made by [`create_scratch_schema`], with everything in it.
pub async fn drop_scratch_schema(admin_url: &str, schema: &str) -> Result<(), StoreError> {
    if !schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StoreError::Config(format!("'{schema}' is not a scratch schema name")));
    }
    let store = Store::connect(admin_url, 1).await?;
    let dropped = store.raw(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
    store.close().await;
    dropped
}

impl Store {
    /// Runs one statement of fixed SQL built in this module from checked names.
    async fn raw(&self, sql: &str) -> Result<(), StoreError> {
        let sql = AssertSqlSafe(sql.to_owned());
        match self.writer() {
            Pool::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            Pool::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        }
        .map_err(StoreError::from)
    }
}
