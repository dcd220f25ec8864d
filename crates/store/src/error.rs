//! The store's one error type: a small surface the web layer maps to statuses.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or check constraint refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or the pool is exhausted; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Bad configuration (for example an unreadable `DATABASE_URL`).
    #[error("{0}")]
    Config(String),
    /// Anything else: a bug or corrupt data. Logged with detail, shown to clients as a generic 500.
    #[error("database error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db)
                if db.is_unique_violation() || db.is_check_violation() || db.is_foreign_key_violation() =>
            {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(db) if is_busy(db.code().as_deref()) => {
                StoreError::Unavailable(db.message().to_owned())
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Other(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Other(format!("migration failed: {e}"))
    }
}

/// SQLite's SQLITE_BUSY (5) / SQLITE_LOCKED (6), PostgreSQL's serialization/deadlock/connection classes.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "40001" | "40P01" | "57P01" | "57P03"))
        || code.is_some_and(|c| c.starts_with("08"))
}
