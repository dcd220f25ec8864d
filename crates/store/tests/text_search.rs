#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The conversation list's text search (`ConversationFilter::search`) through the trigram indexes of migration
//! 20261129000012, on both backends: rows written before the migration are found, the index follows every insert,
//! edit and delete after it, and the meaning is the `lower(content) LIKE '%text%'` scan's (literal `%` and `_`,
//! case-insensitive, texts shorter than a trigram, the external id).

use std::path::Path;
use std::str::FromStr;

use mentorfy_store::{ConversationFilter, IngestWrite, IngestedMessage, NewConversation, NewJob, NewMessage, Store};
use mentorfy_test_support::{Backend, TestDb, both_backends};
use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(
    messages_from_before_the_migration_are_found,
    index_follows_inserts_edits_and_deletes,
    search_keeps_the_like_semantics,
    search_pages_and_combines_with_other_filters,
    signature_pages_equal_the_scan,
    signatures_are_rebuilt_for_conversations_from_before_them,
    matches_beyond_the_signature_window_are_found,
);

/// The last migration before the text search indexes.
const BEFORE_TEXT_SEARCH: i64 = 20261129000011;
/// The last migration before conversations' text signatures.
const BEFORE_TEXT_SIGNATURES: i64 = 20261129000014;

/// Raw statements the store has no API for (messages are never edited or deleted one by one today), to prove the
/// index follows them anyway.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn connect(db: &TestDb) -> Self {
        match db.backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(&db.url).expect("url").create_if_missing(true);
                Self::Sqlite(sqlx::SqlitePool::connect_with(options).await.expect("connect"))
            }
            Backend::Postgres => Self::Postgres(sqlx::PgPool::connect(&db.url).await.expect("connect")),
        }
    }

    async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }

    /// Applies the migrations up to and including `version`.
    async fn migrate_to(&self, version: i64) {
        let dir = match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
        let migrator = Migrator::new(path).await.expect("migrations");
        match self {
            Self::Sqlite(p) => migrator.run_to(version, p).await.expect("migrate"),
            Self::Postgres(p) => migrator.run_to(version, p).await.expect("migrate"),
        }
    }

    async fn execute(&self, sql: &'static str, id: Uuid, content: Option<&str>) {
        let affected = match self {
            Self::Sqlite(p) => {
                let sql = sql.replace("$2", "?2").replace("$1", "?1");
                let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id);
                let q = if let Some(c) = content { q.bind(c.to_owned()) } else { q };
                q.execute(p).await.expect("execute").rows_affected()
            }
            Self::Postgres(p) => {
                let q = sqlx::query(sql).bind(id);
                let q = if let Some(c) = content { q.bind(c.to_owned()) } else { q };
                q.execute(p).await.expect("execute").rows_affected()
            }
        };
        assert_eq!(affected, 1, "{sql}");
    }

    /// A conversation and its messages written as a build from before a migration would (the store's own
    /// writes need today's schema): one message per text, a minute apart from `at`.
    async fn old_conversation(&self, external_id: &str, at: OffsetDateTime, texts: &[&str]) {
        let id = Uuid::now_v7();
        let last = at + Duration::minutes(texts.len() as i64 - 1);
        let n = texts.len() as i64;
        match self {
            Self::Sqlite(p) => {
                let f = time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
                );
                let ts = |t: OffsetDateTime| t.to_offset(time::UtcOffset::UTC).format(&f).expect("format");
                sqlx::query(
                    "INSERT INTO conversations (id, source, external_id, message_count, started_at, last_message_at, \
                     first_message_at, created_at, updated_at) VALUES (?1, 'api', ?2, ?3, ?4, ?5, ?4, ?4, ?5)",
                )
                .bind(id)
                .bind(external_id)
                .bind(n)
                .bind(ts(at))
                .bind(ts(last))
                .execute(p)
                .await
                .expect("insert conversation");
                for (i, text) in texts.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO messages (id, conversation_id, role, content, created_at) \
                         VALUES (?1, ?2, 'user', ?3, ?4)",
                    )
                    .bind(Uuid::now_v7())
                    .bind(id)
                    .bind(*text)
                    .bind(ts(at + Duration::minutes(i as i64)))
                    .execute(p)
                    .await
                    .expect("insert message");
                }
            }
            Self::Postgres(p) => {
                sqlx::query(
                    "INSERT INTO conversations (id, source, external_id, message_count, started_at, last_message_at, \
                     first_message_at, created_at, updated_at) VALUES ($1, 'api', $2, $3, $4, $5, $4, $4, $5)",
                )
                .bind(id)
                .bind(external_id)
                .bind(n)
                .bind(at)
                .bind(last)
                .execute(p)
                .await
                .expect("insert conversation");
                for (i, text) in texts.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO messages (id, conversation_id, role, content, created_at) \
                         VALUES ($1, $2, 'user', $3, $4)",
                    )
                    .bind(Uuid::now_v7())
                    .bind(id)
                    .bind(*text)
                    .bind(at + Duration::minutes(i as i64))
                    .execute(p)
                    .await
                    .expect("insert message");
                }
            }
        }
    }

    async fn set_content(&self, message: Uuid, content: &str) {
        self.execute("UPDATE messages SET content = $2 WHERE id = $1", message, Some(content)).await;
    }

    async fn delete_message(&self, message: Uuid) {
        self.execute("DELETE FROM messages WHERE id = $1", message, None).await;
    }

    async fn delete_conversation(&self, conversation: Uuid) {
        self.execute("DELETE FROM conversations WHERE id = $1", conversation, None).await;
    }
}

/// A conversation `external_id` with one message per text, a minute apart from `at`; returns the conversation's
/// id and its messages' ids.
async fn conversation(store: &Store, external_id: &str, at: OffsetDateTime, texts: &[&str]) -> (Uuid, Vec<Uuid>) {
    let c = store
        .upsert_conversation(NewConversation {
            source: "api",
            environment: "production",
            external_id,
            org_id: None,
            agent_id: None,
            user_id: None,
            metadata: json!({}),
        })
        .await
        .expect("upsert");
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let id = Uuid::now_v7();
        store
            .insert_message(NewMessage {
                id,
                conversation_id: c.id,
                external_id: None,
                role: if i % 2 == 0 { "user" } else { "assistant" },
                content: text,
                status: "complete",
                finish_reason: None,
                input_tokens: None,
                output_tokens: None,
                latency_ms: None,
                ttft_ms: None,
                metadata: json!({}),
                created_at: at + Duration::minutes(i as i64),
            })
            .await
            .expect("insert message");
        ids.push(id);
    }
    (c.id, ids)
}

fn filter(q: &str) -> ConversationFilter {
    ConversationFilter { search: Some(q.to_owned()), limit: 100, ..ConversationFilter::default() }
}

/// The external ids of the conversations matching `q`, in list order (most recent first).
async fn search(store: &Store, q: &str) -> Vec<String> {
    let rows = store.list_conversations(&filter(q)).await.expect("list");
    let n = store.count_conversations(&filter(q)).await.expect("count");
    assert_eq!(n, rows.len() as i64, "count and list agree for {q:?}");
    rows.into_iter().map(|r| r.external_id).collect()
}

async fn messages_from_before_the_migration_are_found(db: TestDb) {
    let raw = Raw::connect(&db).await;
    raw.migrate_to(BEFORE_TEXT_SEARCH).await;
    let t0 = OffsetDateTime::now_utc() - Duration::hours(2);
    raw.old_conversation("old-1", t0, &["Can I get a REFUND for this month?", "Refunds are prorated."]).await;
    raw.old_conversation("old-2", t0 + Duration::minutes(10), &["export my data please"]).await;
    raw.close().await;
    let store = Store::connect(&db.url, 4).await.expect("connect");
    let applied = store.migrate().await.expect("migrate");
    assert!(applied.iter().any(|d| d.contains("text search")), "000012 applied now: {applied:?}");

    assert_eq!(search(&store, "refund").await, ["old-1"]);
    assert_eq!(search(&store, "MY DATA").await, ["old-2"]);
    assert_eq!(search(&store, "prorated.").await, ["old-1"]);
    assert!(search(&store, "refunded").await.is_empty());
    // Written after the migration: found as well.
    conversation(&store, "new-1", t0 + Duration::minutes(20), &["a refund, please"]).await;
    assert_eq!(search(&store, "refund").await, ["new-1", "old-1"]);
}

async fn index_follows_inserts_edits_and_deletes(db: TestDb) {
    let store = db.store().await;
    let raw = Raw::connect(&db).await;
    let t0 = OffsetDateTime::now_utc() - Duration::hours(2);
    let (_, a_msgs) = conversation(&store, "a", t0, &["where is my invoice?", "Invoices are under Billing."]).await;
    let (b, b_msgs) = conversation(&store, "b", t0 + Duration::minutes(10), &["the webhook keeps failing"]).await;
    assert_eq!(search(&store, "invoice").await, ["a"]);
    assert_eq!(search(&store, "webhook").await, ["b"]);

    // Added: a later message of an existing conversation.
    conversation(&store, "b", t0 + Duration::minutes(30), &["also, a question about my invoice"]).await;
    assert_eq!(search(&store, "invoice").await, ["b", "a"]);

    // Edited: the old text is gone, the new one found.
    raw.set_content(b_msgs[0], "the integration keeps failing").await;
    assert!(search(&store, "webhook").await.is_empty(), "an edited-away text is no longer found");
    assert_eq!(search(&store, "integration").await, ["b"]);
    assert_eq!(search(&store, "keeps failing").await, ["b"]);

    // Deleted: one message, then a whole conversation (its messages go by the cascade).
    raw.delete_message(a_msgs[0]).await;
    assert_eq!(search(&store, "invoice").await, ["b", "a"], "a's other message still says 'Invoices'");
    raw.delete_message(a_msgs[1]).await;
    assert_eq!(search(&store, "invoice").await, ["b"]);
    assert!(search(&store, "billing").await.is_empty());
    raw.delete_conversation(b).await;
    assert!(search(&store, "invoice").await.is_empty());
    assert!(search(&store, "integration").await.is_empty());

    // New conversations are still indexed after all that.
    conversation(&store, "c", t0 + Duration::minutes(40), &["Invoice #2 is wrong"]).await;
    assert_eq!(search(&store, "invoice").await, ["c"]);
}

async fn search_keeps_the_like_semantics(db: TestDb) {
    let store = db.store().await;
    let t0 = OffsetDateTime::now_utc() - Duration::hours(2);
    let texts: [(&str, &str); 8] = [
        ("pct", "I am 100% sure about invoice_2024"),
        ("no-pct", "I am 1000 sure about invoiceX2024"),
        ("quote", "she said \"hello there\" twice"),
        ("case", "Please REFUND my Order"),
        ("accent", "Qual é o preço do plano?"),
        ("short", "ok zq"),
        ("slash", "path C:\\temp\\x"),
        ("conv-9", "nothing to see"),
    ];
    for (i, (ext, text)) in texts.iter().enumerate() {
        conversation(&store, ext, t0 + Duration::minutes(i as i64), &[text]).await;
    }
    // `%` and `_` are literal characters, never wildcards, in long and short texts alike.
    assert_eq!(search(&store, "100% sure").await, ["pct"]);
    assert_eq!(search(&store, "0%").await, ["pct"]);
    assert_eq!(search(&store, "%").await, ["pct"]);
    assert_eq!(search(&store, "invoice_2024").await, ["pct"]);
    assert_eq!(search(&store, "_").await, ["pct"]);
    assert_eq!(search(&store, "e_2").await, ["pct"]);
    assert!(search(&store, "100%%").await.is_empty());
    // A backslash and a double quote are literal too (the LIKE's escape character; FTS5's phrase delimiter).
    assert_eq!(search(&store, "c:\\temp").await, ["slash"]);
    assert_eq!(search(&store, "\\").await, ["slash"]);
    assert_eq!(search(&store, "\"hello there\"").await, ["quote"]);
    assert_eq!(search(&store, "said \"hel").await, ["quote"]);
    assert_eq!(search(&store, "\"").await, ["quote"]);
    // Case-insensitive, both ways; a non-ASCII text matches itself.
    assert_eq!(search(&store, "refund my order").await, ["case"]);
    assert_eq!(search(&store, "Please refund").await, ["case"]);
    assert_eq!(search(&store, "preço").await, ["accent"]);
    // Shorter than a trigram: the scan path, same meaning.
    assert_eq!(search(&store, "zq").await, ["short"]);
    assert_eq!(search(&store, "ZQ").await, ["short"]);
    assert_eq!(search(&store, "é").await, ["accent"]);
    // Trimmed, and the external id matches by equality only.
    assert_eq!(search(&store, "  REFUND  ").await, ["case"]);
    assert_eq!(search(&store, "conv-9").await, ["conv-9"]);
    assert!(search(&store, "conv-").await.is_empty(), "the external id is matched whole, not as a substring");
    assert_eq!(search(&store, "pct").await, ["pct"], "an external id no message contains");
    assert!(search(&store, "xyzzy-nothing").await.is_empty());
}

async fn search_pages_and_combines_with_other_filters(db: TestDb) {
    let store = db.store().await;
    let t0 = OffsetDateTime::now_utc() - Duration::days(3);
    // 30 conversations an hour apart; every third mentions a refund.
    for i in 0..30 {
        let text = if i % 3 == 0 { "can I get a refund?" } else { "how do I export?" };
        conversation(&store, &format!("c-{i:02}"), t0 + Duration::hours(i), &["hello", text]).await;
    }
    let expected: Vec<String> = (0..30).rev().filter(|i| i % 3 == 0).map(|i| format!("c-{i:02}")).collect();
    assert_eq!(search(&store, "refund").await, expected);

    // Pages of 3 with the cursor: every match once, newest first.
    let mut seen = Vec::new();
    let mut f = ConversationFilter { limit: 3, ..filter("refund") };
    loop {
        let rows = store.list_conversations(&f).await.expect("list");
        let Some(last) = rows.last() else { break };
        f.after = Some((f.sort.key_of(last), last.id));
        seen.extend(rows.into_iter().map(|r| r.external_id));
    }
    assert_eq!(seen, expected);

    // With a time window: only the last 12 hours' conversations (i >= 18, the window's start inside i = 17's).
    let from = t0 + Duration::hours(17) + Duration::minutes(30);
    let rows = store.list_conversations(&ConversationFilter { from: Some(from), ..filter("refund") }).await.unwrap();
    let got: Vec<String> = rows.into_iter().map(|r| r.external_id).collect();
    assert_eq!(got, ["c-27", "c-24", "c-21", "c-18"]);
    let n = store.count_conversations(&ConversationFilter { from: Some(from), ..filter("refund") }).await.unwrap();
    assert_eq!(n, 4);
}

/// Every conversation matching `q` (filter `f`'s other fields), read in pages of `page` through the cursor.
async fn all_pages(store: &Store, q: &str, page: u64) -> Vec<String> {
    let mut f = ConversationFilter { limit: page, ..filter(q) };
    let mut seen = Vec::new();
    loop {
        let rows = store.list_conversations(&f).await.expect("list");
        let Some(last) = rows.last() else { break };
        f.after = Some((f.sort.key_of(last), last.id));
        let n = rows.len() as u64;
        seen.extend(rows.into_iter().map(|r| r.external_id));
        if n < page {
            break;
        }
    }
    seen
}

/// Small pages fill from the window of the list (the signature plan): page by page they must list exactly what
/// `lower(content) LIKE '%q%'` finds, newest first, whatever collides in the signatures, a message edited away
/// from the text, or a character whose lower case is ASCII on one backend only.
async fn signature_pages_equal_the_scan(db: TestDb) {
    let default = db.store().await;
    // SQLite would take the trigram index for texts this rare: force the window too, and compare both.
    let store = default.clone().with_signature_window_always();
    let raw = Raw::connect(&db).await;
    let t0 = OffsetDateTime::now_utc() - Duration::days(2);
    let texts = [
        "Can I get a refund for March?",
        "how do I export my data",
        "the REFUND never arrived",
        "fund the project, then re-fund",
        "refunding is slow",
        "undo the last change",
        "Qual é o preço do reembolso?",
        "300 \u{212A} is hot",
        "where is my invoice",
        "refund",
        "about 300 k, ok?",
    ];
    let mut conversations = Vec::new();
    for i in 0..40usize {
        let text = texts[i % texts.len()];
        let other = if i.is_multiple_of(4) { "thanks, that helps" } else { "hello there" };
        let (id, msgs) =
            conversation(&store, &format!("c-{i:02}"), t0 + Duration::minutes(i as i64 * 7), &[other, text]).await;
        conversations.push((format!("c-{i:02}"), id, msgs));
    }
    // c-20's refund message is edited away: its signature still has the bits, the LIKE must say no.
    raw.set_content(conversations[20].2[1], "never mind").await;
    let content_of = |i: usize| -> Vec<String> {
        let edited = if i == 20 { "never mind" } else { texts[i % texts.len()] };
        let other = if i.is_multiple_of(4) { "thanks, that helps" } else { "hello there" };
        vec![other.to_lowercase(), edited.to_lowercase()]
    };
    for q in ["refund", "REFUND", "fund", "und", "re-fund", "hello there", "0 k", "preço", "invoice", "nothing here"] {
        let lowered = q.to_lowercase();
        let expected: Vec<String> = (0..40)
            .rev()
            .filter(|i| content_of(*i).iter().any(|c| c.contains(&lowered)))
            .map(|i| format!("c-{i:02}"))
            .collect();
        // U+212A lowers to "k" on PostgreSQL only: SQLite's lower() and LIKE leave it alone.
        let expected: Vec<String> = if q == "0 k" && db.backend == Backend::Sqlite {
            let kelvin: Vec<String> = (0..40).filter(|i| i % texts.len() == 7).map(|i| format!("c-{i:02}")).collect();
            expected.into_iter().filter(|e| !kelvin.contains(e)).collect()
        } else {
            expected
        };
        for page in [1, 2, 5] {
            assert_eq!(all_pages(&store, q, page).await, expected, "q = {q:?}, pages of {page}");
            assert_eq!(all_pages(&default, q, page).await, expected, "q = {q:?}, pages of {page}, default plan");
        }
    }
}

/// Conversations stored before migration 000015 have no signature: they are searched as candidates (results
/// unchanged), and `rebuild_text_signatures` computes theirs, batch by batch, until none is left.
async fn signatures_are_rebuilt_for_conversations_from_before_them(db: TestDb) {
    let raw = Raw::connect(&db).await;
    raw.migrate_to(BEFORE_TEXT_SIGNATURES).await;
    let t0 = OffsetDateTime::now_utc() - Duration::hours(5);
    for i in 0..12 {
        let text = if i % 2 == 0 { "I want a refund" } else { "reset my password" };
        raw.old_conversation(&format!("old-{i:02}"), t0 + Duration::minutes(i * 5), &["hello", text]).await;
    }
    raw.close().await;
    let store = Store::connect(&db.url, 4).await.expect("connect");
    store.migrate().await.expect("migrate");
    let store = store.with_signature_window_always();
    let expected: Vec<String> = (0..12).rev().filter(|i| i % 2 == 0).map(|i| format!("old-{i:02}")).collect();
    assert_eq!(all_pages(&store, "refund", 2).await, expected, "no signature yet: every one is a candidate");

    assert_eq!(store.rebuild_text_signatures(5).await.expect("rebuild"), 5);
    assert_eq!(all_pages(&store, "refund", 2).await, expected, "half rebuilt");
    assert_eq!(store.rebuild_text_signatures(100).await.expect("rebuild"), 7);
    assert_eq!(store.rebuild_text_signatures(100).await.expect("rebuild"), 0, "nothing left");
    assert_eq!(all_pages(&store, "refund", 2).await, expected);
    assert_eq!(all_pages(&store, "password", 3).await.len(), 6);
    // A conversation added after the migration has its signature from its first message.
    conversation(&store, "new", t0 + Duration::hours(1), &["refund please"]).await;
    assert_eq!(store.rebuild_text_signatures(100).await.expect("rebuild"), 0);
    assert_eq!(all_pages(&store, "refund", 2).await.first().map(String::as_str), Some("new"));
}

/// The signature plan reads the first 2,000 conversations of the list; a page it cannot fill there comes from the
/// whole list. 2,300 conversations (batch-ingested, one message each): "refund" in 3 inside the window and 4
/// beyond it, "invoice" in 60 spread over both. Every page, at every size, equals the scan's answer.
async fn matches_beyond_the_signature_window_are_found(db: TestDb) {
    let store = db.store().await.with_signature_window_always();
    let t0 = OffsetDateTime::now_utc() - Duration::days(10);
    let total = 2300usize;
    let text = |i: usize| -> String {
        // i = 0 is the oldest; the window is the newest 2,000 (i >= 300).
        let refund = [5, 17, 120, 299, 1500, 2100, 2299].contains(&i);
        let invoice = i.is_multiple_of(38);
        match (refund, invoice) {
            (true, _) => format!("conversation {i}: I want a REFUND"),
            (false, true) => format!("conversation {i}: where is my invoice"),
            _ => format!("conversation {i}: how do I export"),
        }
    };
    let writes: Vec<IngestWrite> = (0..total)
        .map(|i| IngestWrite {
            event_id: None,
            api_key_id: None,
            source: "api".into(),
            environment: "production".into(),
            external_id: format!("w-{i:04}"),
            user_id: None,
            agent_id: None,
            metadata: json!({}),
            messages: vec![IngestedMessage {
                external_id: "m1".into(),
                role: "user".into(),
                content: text(i),
                status: "complete".into(),
                finish_reason: None,
                input_tokens: None,
                output_tokens: None,
                latency_ms: None,
                ttft_ms: None,
                metadata: json!({}),
                created_at: t0 + Duration::minutes(i as i64),
            }],
        })
        .collect();
    let job = |_id: Uuid| NewJob::new("test", "noop", json!({}));
    for chunk in writes.chunks(500) {
        store.ingest(chunk, &job).await.expect("ingest");
    }
    for q in ["refund", "invoice", "conversation 2", "nothing at all"] {
        let lowered = q.to_lowercase();
        let expected: Vec<String> = (0..total)
            .rev()
            .filter(|i| text(*i).to_lowercase().contains(&lowered))
            .map(|i| format!("w-{i:04}"))
            .collect();
        for page in [2, 5, 50] {
            assert_eq!(all_pages(&store, q, page).await, expected, "q = {q:?}, pages of {page}");
        }
    }
}
