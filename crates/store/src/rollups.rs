//! Hourly rollups behind the analytics totals and trends (migration 000013): per hour and environment, the
//! conversations whose last message fell in the hour (count, messages, analysed, health sum, failing), and the
//! failures per type that occurred in it.
//!
//! Correctness never depends on the refresh having run. A read of `[from, to)` takes from the rollups only the
//! whole hours before the watermark that no trigger has marked stale since they were computed, and reads
//! everything else (the partial hours at both ends, the hours not yet computed, the stale ones) from the raw
//! tables. The triggers log a change to any hour that had already ended, in the change's own transaction; the
//! refresh recomputes those hours and the newly ended ones in one transaction (SQLite: the writer lock;
//! PostgreSQL: REPEATABLE READ under an advisory lock, so it deletes exactly the stale marks its snapshot saw and
//! several servers never refresh at once).

use std::collections::BTreeSet;

use sea_query::{Alias, Expr, ExprTrait, Func, Query, SimpleExpr};
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::db::{Store, StoreKind, Tx};
use crate::dialect::{Bucket, ts};
use crate::error::StoreError;

#[derive(sea_query::Iden, Clone, Copy)]
pub(crate) enum ConversationHours {
    Table,
    Hour,
    Environment,
    Conversations,
    Messages,
    Analysed,
    HealthSum,
    Failing,
}

#[derive(sea_query::Iden, Clone, Copy)]
pub(crate) enum FailureHours {
    Table,
    Hour,
    Environment,
    Type,
    Failures,
}

#[derive(sea_query::Iden, Clone, Copy)]
enum RollupState {
    Table,
    Id,
    Watermark,
    RefreshedAt,
}

#[derive(sea_query::Iden, Clone, Copy)]
enum RollupStale {
    Table,
    Hour,
}

/// An hour that ended less than this long ago is not computed yet: a transaction that wrote into it just before
/// it ended (and so logged nothing) has this long to commit.
const SETTLE: Duration = Duration::minutes(5);

/// The key of the advisory lock that keeps PostgreSQL servers from refreshing at once.
const REFRESH_LOCK: i64 = 0x6d65_6e74_726f_6c6c; // "mentroll"

/// What one [`Store::refresh_rollups`] did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RollupRefresh {
    /// Another server held the refresh lock; nothing was done.
    pub skipped: bool,
    /// Contiguous hour ranges recomputed (stale hours and newly ended ones).
    pub ranges: usize,
    /// Hours before this are computed (`YYYY-MM-DDTHH`, UTC).
    pub watermark: String,
}

/// Where the rollups stand, for operators (`mentorfy jobs`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RollupStatus {
    /// Hours before this are computed (`YYYY-MM-DDTHH`, UTC); empty before the first refresh.
    pub watermark: String,
    pub refreshed_at: Option<OffsetDateTime>,
    /// Distinct hours marked stale since the last refresh (read from the raw tables until then).
    pub stale_hours: i64,
}

/// The UTC hour of `t` as rollup text, `2026-11-29T14`.
pub(crate) fn hour_label(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!("{:04}-{:02}-{:02}T{:02}", t.year(), u8::from(t.month()), t.day(), t.hour())
}

/// The start of a rollup hour; `None` for text that is not one.
pub(crate) fn hour_start(label: &str) -> Option<OffsetDateTime> {
    let (date, hour) = label.split_once('T')?;
    let mut parts = date.splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let hour: u8 = hour.parse().ok()?;
    let date = time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    Some(date.with_hms(hour, 0, 0).ok()?.assume_utc())
}

fn floor_hour(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t.replace_time(time::Time::from_hms(t.hour(), 0, 0).unwrap_or(time::Time::MIDNIGHT))
}

fn ceil_hour(t: OffsetDateTime) -> OffsetDateTime {
    let f = floor_hour(t);
    if f == t { f } else { f + Duration::HOUR }
}

/// A rollup hour's bucket label: the hour itself, or its day.
pub(crate) fn rollup_bucket(bucket: Bucket) -> SimpleExpr {
    match bucket {
        Bucket::Hour => Expr::col(Alias::new("hour")),
        Bucket::Day => Func::cust("substr").arg(Expr::col(Alias::new("hour"))).arg(1).arg(10).into(),
    }
}

/// How to read `[from, to)`: the rollup hours `[first, end)` except `stale`, and the raw spans around and between.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ReadPlan {
    /// `[first, end)` as hour labels; `None` when no rollup hour is usable.
    pub rollup: Option<(String, String)>,
    /// Hours inside `rollup` to leave out (they are in `raw`).
    pub stale: Vec<String>,
    /// Spans to read from the raw tables, in order, disjoint.
    pub raw: Vec<(OffsetDateTime, OffsetDateTime)>,
}

impl ReadPlan {
    /// The whole period from the raw tables.
    fn raw_only(from: OffsetDateTime, to: OffsetDateTime) -> Self {
        ReadPlan { rollup: None, stale: Vec::new(), raw: if from < to { vec![(from, to)] } else { Vec::new() } }
    }

    /// Restricts a rollup query (with an `hour` column) to the usable hours.
    pub(crate) fn restrict(&self, q: &mut sea_query::SelectStatement) {
        if let Some((first, end)) = &self.rollup {
            q.and_where(Expr::col(Alias::new("hour")).gte(first.as_str()))
                .and_where(Expr::col(Alias::new("hour")).lt(end.as_str()));
            if !self.stale.is_empty() {
                q.and_where(Expr::col(Alias::new("hour")).is_not_in(self.stale.iter().map(String::as_str)));
            }
        }
    }
}

/// Merges sorted, disjoint spans that touch.
fn merge(spans: Vec<(OffsetDateTime, OffsetDateTime)>) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    let mut out: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        if a >= b {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 >= a => last.1 = Ord::max(last.1, b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Contiguous runs of hour labels (sorted, distinct) as `[start, end)` hour labels.
fn hour_runs(hours: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut runs: Vec<(OffsetDateTime, OffsetDateTime)> = Vec::new();
    for start in hours.iter().filter_map(|h| hour_start(h)) {
        runs.push((start, start + Duration::HOUR));
    }
    merge(runs).into_iter().map(|(a, b)| (hour_label(a), hour_label(b))).collect()
}

impl Store {
    /// Which hours of `[from, to)` the rollups can answer (see the module doc).
    pub(crate) async fn read_plan(&self, from: OffsetDateTime, to: OffsetDateTime) -> Result<ReadPlan, StoreError> {
        let first = ceil_hour(from);
        let last = floor_hour(to);
        if first >= last {
            return Ok(ReadPlan::raw_only(from, to));
        }
        // The watermark first, the stale marks second: a refresh committing in between then only makes this read
        // take more from the raw tables, never trust a recomputed hour's old value.
        let state = Query::select().column(RollupState::Watermark).from(RollupState::Table).to_owned();
        let watermark = self.fetch_optional::<(String,)>(&state).await?.and_then(|(w,)| hour_start(&w));
        let Some(end) = watermark.map(|w| Ord::min(w, last)).filter(|end| *end > first) else {
            return Ok(ReadPlan::raw_only(from, to));
        };
        let (first_label, end_label) = (hour_label(first), hour_label(end));
        let marks = Query::select()
            .distinct()
            .column(RollupStale::Hour)
            .from(RollupStale::Table)
            .and_where(Expr::col(RollupStale::Hour).gte(first_label.as_str()))
            .and_where(Expr::col(RollupStale::Hour).lt(end_label.as_str()))
            .to_owned();
        let stale: Vec<String> = self.fetch_all::<(String,)>(&marks).await?.into_iter().map(|(h,)| h).collect();
        let mut raw = vec![(from, first)];
        raw.extend(stale.iter().filter_map(|h| hour_start(h)).map(|s| (s, s + Duration::HOUR)));
        raw.push((end, to));
        raw.sort();
        Ok(ReadPlan { rollup: Some((first_label, end_label)), stale, raw: merge(raw) })
    }

    /// Where the rollups stand.
    pub async fn rollup_status(&self) -> Result<RollupStatus, StoreError> {
        let state = Query::select()
            .columns([RollupState::Watermark, RollupState::RefreshedAt])
            .from(RollupState::Table)
            .to_owned();
        let (watermark, refreshed_at) =
            self.fetch_optional::<(String, Option<OffsetDateTime>)>(&state).await?.unwrap_or_default();
        let stale =
            Query::select().expr(Expr::col(RollupStale::Hour).count_distinct()).from(RollupStale::Table).to_owned();
        let (stale_hours,) = self.fetch_optional::<(i64,)>(&stale).await?.unwrap_or_default();
        Ok(RollupStatus { watermark, refreshed_at, stale_hours })
    }

    /// Brings the rollups up to date: recomputes the hours marked stale and the hours that ended (more than
    /// [`SETTLE`] ago) since the last refresh, then moves the watermark. Safe to call from every server at any
    /// time; on PostgreSQL a call while another runs returns `skipped`.
    pub async fn refresh_rollups(&self, now: OffsetDateTime) -> Result<RollupRefresh, StoreError> {
        let kind = self.kind();
        let closed = hour_label(floor_hour(now - SETTLE));
        let mut tx = match kind {
            StoreKind::Sqlite => self.begin_for_update().await?,
            StoreKind::Postgres => self.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ").await?,
        };
        if kind == StoreKind::Postgres {
            let lock = Query::select().expr(Func::cust("pg_try_advisory_xact_lock").arg(REFRESH_LOCK)).to_owned();
            let (got,) = tx.fetch_optional::<(bool,)>(&lock).await?.unwrap_or((false,));
            if !got {
                return Ok(RollupRefresh { skipped: true, ..RollupRefresh::default() });
            }
        }
        let state = Query::select()
            .column(RollupState::Watermark)
            .from(RollupState::Table)
            .and_where(Expr::col(RollupState::Id).eq(1))
            .to_owned();
        let (watermark,) = tx.fetch_optional::<(String,)>(&state).await?.unwrap_or_default();
        let marks = Query::select()
            .distinct()
            .column(RollupStale::Hour)
            .from(RollupStale::Table)
            .and_where(Expr::col(RollupStale::Hour).lt(watermark.as_str()))
            .to_owned();
        let stale: BTreeSet<String> = tx.fetch_all::<(String,)>(&marks).await?.into_iter().map(|(h,)| h).collect();
        // Stale hours below the watermark, then everything from the watermark to the newly closed hour.
        let mut ranges: Vec<(Option<String>, String)> =
            hour_runs(&stale).into_iter().map(|(a, b)| (Some(a), b)).collect();
        if watermark < closed {
            ranges.push((Some(watermark.clone()).filter(|w| !w.is_empty()), closed.clone()));
        }
        for (start, end) in &ranges {
            recompute(&mut tx, kind, start.as_deref(), end).await?;
        }
        // Every mark this transaction can see is handled: below the watermark it was recomputed, from it up to
        // `closed` it was computed fresh, and later hours are computed when they close.
        tx.execute(&Query::delete().from_table(RollupStale::Table).to_owned()).await?;
        let watermark = Ord::max(watermark, closed);
        let update = Query::update()
            .table(RollupState::Table)
            .value(RollupState::Watermark, watermark.as_str())
            .value(RollupState::RefreshedAt, ts(kind, now))
            .and_where(Expr::col(RollupState::Id).eq(1))
            .to_owned();
        tx.execute(&update).await?;
        tx.commit().await?;
        Ok(RollupRefresh { skipped: false, ranges: ranges.len(), watermark })
    }
}

/// Replaces the rollup rows of the hours `[start, end)` (from the beginning when `start` is `None`) with totals
/// computed from the raw tables.
async fn recompute(tx: &mut Tx, kind: StoreKind, start: Option<&str>, end: &str) -> Result<(), StoreError> {
    use crate::analysis::Failures;
    use crate::conversations::Conversations;

    let bounds = |q: &mut sea_query::SelectStatement, col: SimpleExpr| {
        if let Some(t) = start.and_then(hour_start) {
            q.and_where(col.clone().gte(ts(kind, t)));
        }
        if let Some(t) = hour_start(end) {
            q.and_where(col.lt(ts(kind, t)));
        }
    };
    for table in [Alias::new("conversation_hours"), Alias::new("failure_hours")] {
        let mut delete = Query::delete();
        delete.from_table(table).and_where(Expr::col(Alias::new("hour")).lt(end));
        if let Some(start) = start {
            delete.and_where(Expr::col(Alias::new("hour")).gte(start));
        }
        tx.execute(&delete).await?;
    }

    let bigint = |e: SimpleExpr| SimpleExpr::from(Func::cast_as(e, Alias::new("BIGINT")));
    let real = |e: SimpleExpr| SimpleExpr::from(Func::cast_as(e, Alias::new("DOUBLE PRECISION")));
    let lma = Expr::col((Conversations::Table, Conversations::LastMessageAt));
    let mut select = Query::select();
    select
        .expr_as(crate::dialect::time_bucket(kind, Bucket::Hour, lma.clone()), Alias::new("rollup_hour"))
        .column((Conversations::Table, Conversations::Environment))
        .expr(Expr::col((Conversations::Table, Conversations::Id)).count())
        .expr(bigint(Func::coalesce([Func::sum(Expr::col(Conversations::MessageCount)).into(), Expr::val(0)]).into()))
        .expr(Expr::col(Conversations::HealthScore).count())
        .expr(real(Func::coalesce([Func::sum(Expr::col(Conversations::HealthScore)).into(), Expr::val(0.0)]).into()))
        .expr(bigint(
            Func::sum(Expr::case(Expr::col(Conversations::FailureCount).gt(0), Expr::val(1)).finally(Expr::val(0)))
                .into(),
        ))
        .from(Conversations::Table);
    bounds(&mut select, lma);
    select.add_group_by([
        Expr::col(Alias::new("rollup_hour")),
        Expr::col((Conversations::Table, Conversations::Environment)),
    ]);
    let mut insert = Query::insert();
    insert.into_table(ConversationHours::Table).columns([
        ConversationHours::Hour,
        ConversationHours::Environment,
        ConversationHours::Conversations,
        ConversationHours::Messages,
        ConversationHours::Analysed,
        ConversationHours::HealthSum,
        ConversationHours::Failing,
    ]);
    insert.select_from(select).map_err(|e| StoreError::Other(e.to_string()))?;
    tx.execute(&insert).await?;

    let occurred = Expr::col((Failures::Table, Failures::OccurredAt));
    let mut select = Query::select();
    select
        .expr_as(crate::dialect::time_bucket(kind, Bucket::Hour, occurred.clone()), Alias::new("rollup_hour"))
        .column((Conversations::Table, Conversations::Environment))
        .column((Failures::Table, Failures::Type))
        .expr(Expr::col((Failures::Table, Failures::Id)).count())
        .from(Failures::Table)
        .inner_join(
            Conversations::Table,
            Expr::col((Conversations::Table, Conversations::Id)).equals((Failures::Table, Failures::ConversationId)),
        );
    bounds(&mut select, occurred);
    select.add_group_by([
        Expr::col(Alias::new("rollup_hour")),
        Expr::col((Conversations::Table, Conversations::Environment)),
        Expr::col((Failures::Table, Failures::Type)),
    ]);
    let mut insert = Query::insert();
    insert.into_table(FailureHours::Table).columns([
        FailureHours::Hour,
        FailureHours::Environment,
        FailureHours::Type,
        FailureHours::Failures,
    ]);
    insert.select_from(select).map_err(|e| StoreError::Other(e.to_string()))?;
    tx.execute(&insert).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use mentorfy_test_support::{TestDb, both_backends};
    use time::macros::datetime;

    use super::*;

    both_backends!(reads_take_whole_current_hours_from_the_rollups_and_the_rest_raw);

    async fn reads_take_whole_current_hours_from_the_rollups_and_the_rest_raw(db: TestDb) {
        let store = Store::connect(&db.url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let now = datetime!(2026-03-04 12:30 UTC);
        let (from, to) = (now - Duration::hours(30), now - Duration::minutes(10));
        assert_eq!(store.read_plan(from, to).await.unwrap(), ReadPlan::raw_only(from, to), "nothing rolled up yet");

        store.refresh_rollups(now).await.unwrap();
        let status = store.rollup_status().await.unwrap();
        assert_eq!((status.watermark.as_str(), status.stale_hours), ("2026-03-04T12", 0));
        let plan = store.read_plan(from, to).await.unwrap();
        assert_eq!(plan.rollup, Some(("2026-03-03T07".to_owned(), "2026-03-04T12".to_owned())));
        assert_eq!(plan.raw, vec![(from, datetime!(2026-03-03 07:00 UTC)), (datetime!(2026-03-04 12:00 UTC), to)]);

        // A change to an hour already rolled up marks it stale: it is read raw until the next refresh.
        let at = datetime!(2026-03-03 20:15 UTC);
        let write = crate::IngestWrite {
            event_id: None,
            api_key_id: None,
            source: "api".into(),
            environment: "test".into(),
            external_id: "late".into(),
            user_id: None,
            agent_id: None,
            metadata: serde_json::json!({}),
            messages: vec![crate::IngestedMessage {
                external_id: "m1".into(),
                role: "user".into(),
                content: "late".into(),
                status: "complete".into(),
                finish_reason: None,
                input_tokens: None,
                output_tokens: None,
                latency_ms: None,
                ttft_ms: None,
                metadata: serde_json::json!({}),
                created_at: at,
            }],
        };
        store.ingest(&[write], &|_| crate::NewJob::new("test", "noop", serde_json::json!({}))).await.unwrap();
        let plan = store.read_plan(from, to).await.unwrap();
        assert_eq!(plan.stale, vec!["2026-03-03T20".to_owned()]);
        assert!(plan.raw.contains(&(datetime!(2026-03-03 20:00 UTC), datetime!(2026-03-03 21:00 UTC))));
        assert_eq!(store.rollup_status().await.unwrap().stale_hours, 1);
        store.refresh_rollups(now).await.unwrap();
        assert!(store.read_plan(from, to).await.unwrap().stale.is_empty());
        assert_eq!(store.rollup_status().await.unwrap().stale_hours, 0);
    }

    #[test]
    fn hour_labels_round_trip_and_sort_as_time() {
        let t = datetime!(2026-03-04 05:06:07.5 UTC);
        assert_eq!(hour_label(t), "2026-03-04T05");
        assert_eq!(hour_start("2026-03-04T05"), Some(datetime!(2026-03-04 05:00 UTC)));
        assert_eq!(hour_start("2026-02-30T05"), None);
        assert_eq!(hour_start(""), None);
        assert!(hour_label(t) < hour_label(t + Duration::HOUR * 20));
        assert_eq!(ceil_hour(datetime!(2026-03-04 05:00 UTC)), datetime!(2026-03-04 05:00 UTC));
        assert_eq!(ceil_hour(datetime!(2026-03-04 05:00:01 UTC)), datetime!(2026-03-04 06:00 UTC));
    }

    #[test]
    fn stale_hours_merge_into_runs() {
        let hours: BTreeSet<String> =
            ["2026-03-04T23", "2026-03-05T00", "2026-03-05T02"].into_iter().map(String::from).collect();
        assert_eq!(
            hour_runs(&hours),
            vec![
                ("2026-03-04T23".to_owned(), "2026-03-05T01".to_owned()),
                ("2026-03-05T02".to_owned(), "2026-03-05T03".to_owned())
            ]
        );
    }
}
