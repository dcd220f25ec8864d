use mentorfy_store::StoreError;

use crate::ingest::ValidationError;

/// Why an ingestion failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SenseiError {
    /// The input is unacceptable; nothing was stored.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// The database refused or was unreachable; nothing was stored (the transaction rolled back).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (a background task that died); a bug, not the caller's fault.
    #[error("{0}")]
    Other(String),
}
