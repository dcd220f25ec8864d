//! Time series for the dashboard's charts: conversation health per hour or day (through the hourly rollups, see
//! `analytics.rs`).

use time::OffsetDateTime;

use crate::db::Store;
use crate::dialect::Bucket;
use crate::error::StoreError;

/// The conversations whose last message fell in one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPoint {
    /// `2026-11-29T14` (hour) or `2026-11-29` (day), UTC.
    pub bucket: String,
    pub conversations: i64,
    /// Mean health of the analysed ones; `None` when none is analysed.
    pub avg_health: Option<f64>,
    /// Conversations with at least one failure.
    pub failing: i64,
}

impl Store {
    /// Health per bucket of the conversations last active in `[from, to)`, dated by their last message. Buckets
    /// without conversations are absent; oldest first.
    pub async fn health_trend(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        bucket: Bucket,
        environment: Option<&str>,
    ) -> Result<Vec<HealthPoint>, StoreError> {
        let sums = self.conversation_sums(from, to, Some(bucket), environment).await?;
        Ok(sums
            .into_iter()
            .map(|(bucket, s)| HealthPoint {
                bucket,
                conversations: s.conversations,
                avg_health: s.avg_health(),
                failing: s.failing,
            })
            .collect())
    }
}
