//! The only place where SQLite and PostgreSQL differ in what we send: how a timestamp is bound, and how a
//! read-modify-write transaction takes its lock. Everything else is one query for both.

use sea_query::{Expr, ExprTrait};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::StoreKind;

/// Timestamps are kept to the microsecond on both backends (PostgreSQL's precision), so a value read back
/// equals the value written.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

/// A timestamp as a bound value. PostgreSQL gets `timestamptz`; SQLite gets UTC RFC 3339 text with exactly six
/// fractional digits, so text order is time order (sqlx's own encoding trims zeros and would not sort).
pub fn ts(kind: StoreKind, t: OffsetDateTime) -> Expr {
    match kind {
        StoreKind::Postgres => Expr::val(t),
        StoreKind::Sqlite => {
            let t = t.to_offset(time::UtcOffset::UTC);
            let base = t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_default();
            let text = format!("{}.{:06}Z", base.trim_end_matches('Z'), t.nanosecond() / 1_000);
            Expr::val(text)
        }
    }
}

/// `left` with the top-level keys of the JSON object `right` written over it (both JSON objects).
/// PostgreSQL: `jsonb ||`. SQLite: `json_patch` (RFC 7396; a `null` in `right` removes the key there, while
/// PostgreSQL keeps it as `null` — callers strip nulls first to get one behaviour).
pub fn json_merge(kind: StoreKind, left: Expr, right: Expr) -> Expr {
    match kind {
        StoreKind::Postgres => left.binary(sea_query::BinOper::Custom("||"), right),
        StoreKind::Sqlite => sea_query::Func::cust("json_patch").arg(left).arg(right).into(),
    }
}

/// The statement that opens a transaction which will read a row and write it back.
/// SQLite: `BEGIN IMMEDIATE` takes the write lock up front (a deferred BEGIN would fail with SQLITE_BUSY on
/// upgrade instead of waiting). PostgreSQL: a plain BEGIN; the row lock is the `FOR UPDATE` on the SELECT,
/// which sea-query omits for SQLite.
pub fn begin_for_update(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Sqlite => "BEGIN IMMEDIATE",
        StoreKind::Postgres => "BEGIN",
    }
}

/// A necessary condition for a message's `content` to contain `lowered` (already lower-cased, 3 or more
/// characters) that an index can answer, or `None` when the backend's index answers the LIKE itself.
/// SQLite: the message's rowid among the matches of the phrase `"lowered"` in `messages_fts` (FTS5, trigram
/// tokenizer: case-folded substrings; migration 20261129000012). PostgreSQL: `None`, its GIN trigram index is on
/// `lower(content)` and serves the `LIKE`. Either way the caller keeps the exact `LIKE` test.
pub fn text_candidates(kind: StoreKind, messages_rowid: Expr, lowered: &str) -> Option<Expr> {
    match kind {
        StoreKind::Postgres => None,
        StoreKind::Sqlite => Some(messages_rowid.in_subquery(fts_matches(lowered))),
    }
}

/// `SELECT count(*)` of at most `cap` candidate messages for `lowered` (as in [`text_candidates`]), read from the
/// index alone, so it costs little whatever the text: SQLite only (FTS5 reads its index without the rows), `None`
/// on PostgreSQL, where counting candidates means rechecking them on the heap.
pub fn text_candidates_sample(kind: StoreKind, lowered: &str, cap: u64) -> Option<sea_query::SelectStatement> {
    match kind {
        StoreKind::Postgres => None,
        StoreKind::Sqlite => Some(
            sea_query::Query::select()
                .expr(Expr::cust("count(*)"))
                .from_subquery(fts_matches(lowered).limit(cap).to_owned(), sea_query::Alias::new("sample"))
                .to_owned(),
        ),
    }
}

/// The rowids of `messages_fts` matching the one phrase `"lowered"`: inside double quotes every character is
/// literal and a quote is written twice.
fn fts_matches(lowered: &str) -> sea_query::SelectStatement {
    let phrase = format!("\"{}\"", lowered.replace('"', "\"\""));
    sea_query::Query::select()
        .expr(Expr::cust("rowid"))
        .from(sea_query::Alias::new("messages_fts"))
        .and_where(Expr::cust_with_values("messages_fts MATCH ?", [phrase]))
        .to_owned()
}

/// The width of a time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

/// A timestamp truncated to its UTC hour or day, as text both backends produce alike: `2026-11-29T14` for an hour,
/// `2026-11-29` for a day. SQLite: a prefix of the stored RFC 3339 text. PostgreSQL: `to_char` in UTC.
pub fn time_bucket(kind: StoreKind, bucket: Bucket, t: Expr) -> Expr {
    match kind {
        StoreKind::Sqlite => {
            let len = if bucket == Bucket::Hour { 13 } else { 10 };
            sea_query::Func::cust("substr").arg(t).arg(1).arg(len).into()
        }
        StoreKind::Postgres => {
            let format = if bucket == Bucket::Hour { "YYYY-MM-DD\"T\"HH24" } else { "YYYY-MM-DD" };
            let utc = t.binary(sea_query::BinOper::Custom("AT TIME ZONE"), Expr::val("UTC"));
            sea_query::Func::cust("to_char").arg(utc).arg(format).into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_have_fixed_width_and_sort_as_text() {
        let a = time::macros::datetime!(2026-01-02 03:04:05 UTC);
        let b = a + time::Duration::microseconds(500_000);
        let render = |t| format!("{:?}", ts(StoreKind::Sqlite, t));
        assert!(render(a).contains("2026-01-02T03:04:05.000000Z"), "{}", render(a));
        assert!(render(b).contains("2026-01-02T03:04:05.500000Z"), "{}", render(b));
    }
}
