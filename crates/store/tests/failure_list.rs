#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Failures across conversations and pattern trends on both backends: filters, newest-first keyset pages with no
//! gap or repeat (ties on the creation time broken by id), bulk triage, and one pattern's health per day.

use std::collections::HashSet;

use mentorfy_store::{
    AnalysisWrite, Bucket, FailureListFilter, FailureWrite, NewConversation, NewMessage, PatternRunWrite, PatternWrite,
    Store,
};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

both_backends!(failures_are_filtered_paged_and_triaged_in_bulk, pattern_trend_counts_members_per_day);

async fn store(db: &TestDb) -> Store {
    let store = Store::connect(&db.url, 4).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn conversation(store: &Store, name: &str, agent: &str, at: OffsetDateTime) -> Uuid {
    let c = store
        .upsert_conversation(NewConversation {
            source: "api",
            environment: "production",
            external_id: name,
            org_id: None,
            agent_id: Some(agent),
            user_id: None,
            metadata: json!({}),
        })
        .await
        .unwrap();
    store
        .insert_message(NewMessage {
            id: Uuid::now_v7(),
            conversation_id: c.id,
            external_id: None,
            role: "user",
            content: "hello",
            status: "complete",
            finish_reason: None,
            input_tokens: None,
            output_tokens: None,
            latency_ms: None,
            ttft_ms: None,
            metadata: json!({}),
            created_at: at,
        })
        .await
        .unwrap();
    c.id
}

async fn analyse(store: &Store, id: Uuid, health: f64, failures: Vec<FailureWrite>) {
    let conv = store.get_conversation(id).await.unwrap().unwrap();
    store
        .save_analysis(&AnalysisWrite {
            conversation_id: id,
            seen_last_message_at: conv.last_message_at,
            sentiments: Vec::new(),
            failures,
            health_score: health,
            health_breakdown: json!({}),
            avg_sentiment: None,
            is_final: false,
        })
        .await
        .unwrap();
}

fn failure(kind: &str, severity: &str, n: usize) -> FailureWrite {
    FailureWrite {
        message_id: None,
        kind: kind.into(),
        severity: severity.into(),
        evidence: format!("evidence {n}"),
        detector: "test".into(),
        detector_version: 1,
        fingerprint: format!("test:{kind}:{n}"),
        details: json!({}),
    }
}

async fn failures_are_filtered_paged_and_triaged_in_bulk(db: TestDb) {
    let store = store(&db).await;
    let now = OffsetDateTime::now_utc();
    // 6 conversations; each analysis writes 4 failures with one creation time (ties inside a conversation).
    let mut all = Vec::new();
    for i in 0..6 {
        let id = conversation(
            &store,
            &format!("c{i}"),
            if i % 2 == 0 { "coach" } else { "support" },
            now - Duration::hours(i),
        )
        .await;
        let failures = (0..4)
            .map(|k| {
                failure(
                    if k % 2 == 0 { "user_frustration" } else { "agent_loop" },
                    if k == 3 { "high" } else { "low" },
                    k,
                )
            })
            .collect();
        analyse(&store, id, 40.0, failures).await;
        all.push(id);
    }
    let everything = store.list_failures_page(&FailureListFilter::default()).await.unwrap();
    assert_eq!(everything.len(), 24);
    for w in everything.windows(2) {
        let (a, b) = (&w[0].failure, &w[1].failure);
        assert!((a.created_at, a.id) > (b.created_at, b.id), "newest first, then id descending");
    }
    let first = &everything[0];
    assert_eq!(first.failure.conversation_id, all[5], "the last analysed comes first");
    assert_eq!(first.external_id, "c5");
    assert_eq!(first.agent_id.as_deref(), Some("support"));

    // Pages of 5 with the keyset cursor: every failure once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page =
            store.list_failures_page(&FailureListFilter { limit: 5, after, ..Default::default() }).await.unwrap();
        seen.extend(page.iter().map(|r| r.failure.id));
        if page.len() < 5 {
            break;
        }
        let last = &page.last().unwrap().failure;
        after = Some((last.created_at, last.id));
    }
    assert_eq!(seen, everything.iter().map(|r| r.failure.id).collect::<Vec<_>>());

    let q = |f: FailureListFilter| {
        let store = store.clone();
        async move { store.list_failures_page(&f).await.unwrap() }
    };
    let loops = q(FailureListFilter { kind: Some("agent_loop".into()), ..Default::default() }).await;
    assert_eq!(loops.len(), 12);
    assert!(loops.iter().all(|r| r.failure.kind == "agent_loop"));
    let high =
        q(FailureListFilter { severity: Some("high".into()), kind: Some("agent_loop".into()), ..Default::default() })
            .await;
    assert_eq!(high.len(), 6);
    let future = q(FailureListFilter { from: Some(now + Duration::hours(1)), ..Default::default() }).await;
    assert!(future.is_empty());
    let past = q(FailureListFilter { to: Some(now - Duration::hours(1)), ..Default::default() }).await;
    assert!(past.is_empty(), "failures are dated when detected (now)");
    let recent = q(FailureListFilter {
        from: Some(now - Duration::hours(1)),
        to: Some(now + Duration::hours(1)),
        ..Default::default()
    })
    .await;
    assert_eq!(recent.len(), 24);

    // Bulk triage: unknown ids are skipped.
    let ids: Vec<Uuid> = high.iter().map(|r| r.failure.id).chain([Uuid::now_v7()]).collect();
    assert_eq!(store.set_failures_status(&ids, "ack").await.unwrap(), 6);
    let acked = q(FailureListFilter { status: Some("ack".into()), ..Default::default() }).await;
    assert_eq!(acked.iter().map(|r| r.failure.id).collect::<HashSet<_>>(), high.iter().map(|r| r.failure.id).collect());
    let open = q(FailureListFilter { status: Some("open".into()), ..Default::default() }).await;
    assert_eq!(open.len(), 18);
    assert_eq!(store.set_failures_status(&[], "resolved").await.unwrap(), 0);
    store.close().await;
}

async fn pattern_trend_counts_members_per_day(db: TestDb) {
    let store = store(&db).await;
    let day = |d: i64| time::macros::datetime!(2026-11-20 12:00 UTC) + Duration::days(d);
    // Members: two on day 0 (one failing, health 40 and 80), one on day 2; a non-member on day 0.
    let a = conversation(&store, "a", "coach", day(0)).await;
    analyse(&store, a, 40.0, vec![failure("agent_loop", "low", 1)]).await;
    let b = conversation(&store, "b", "coach", day(0) + Duration::hours(3)).await;
    analyse(&store, b, 80.0, Vec::new()).await;
    let c = conversation(&store, "c", "coach", day(2)).await;
    let other = conversation(&store, "other", "coach", day(0)).await;
    let run = PatternRunWrite {
        id: Uuid::now_v7(),
        trigger: "manual".into(),
        window_from: day(-1),
        window_to: day(3),
        representation: "tfidf".into(),
        conversations: 4,
        params: json!({}),
        started_at: day(3),
        patterns: vec![
            PatternWrite {
                label: "loops".into(),
                keywords: json!([]),
                avg_health: Some(60.0),
                failure_rate: Some(0.33),
                examples: json!([]),
                method: "ctfidf".into(),
                members: vec![(a, 0.9), (b, 0.8), (c, 0.7)],
            },
            PatternWrite {
                label: "others".into(),
                keywords: json!([]),
                avg_health: None,
                failure_rate: None,
                examples: json!([]),
                method: "ctfidf".into(),
                members: vec![(other, 0.9)],
            },
        ],
    };
    store.save_pattern_run(&run, 8).await.unwrap();
    let patterns = store.list_patterns(run.id).await.unwrap();
    let loops = patterns.iter().find(|p| p.label == "loops").unwrap();
    let points = store.pattern_trend(loops.id, None, None, Bucket::Day).await.unwrap();
    assert_eq!(points.len(), 2, "{points:?}");
    assert_eq!(points[0].bucket, "2026-11-20");
    assert_eq!((points[0].conversations, points[0].failing), (2, 1));
    assert_eq!(points[0].avg_health, Some(60.0));
    assert_eq!(points[1].bucket, "2026-11-22");
    assert_eq!((points[1].conversations, points[1].failing, points[1].avg_health), (1, 0, None));
    let windowed = store.pattern_trend(loops.id, Some(day(1)), Some(day(3)), Bucket::Day).await.unwrap();
    assert_eq!(windowed.len(), 1);
    let hourly = store.pattern_trend(loops.id, None, None, Bucket::Hour).await.unwrap();
    assert_eq!(
        hourly.iter().map(|p| p.bucket.as_str()).collect::<Vec<_>>(),
        vec!["2026-11-20T12", "2026-11-20T15", "2026-11-22T12"]
    );
    assert!(store.pattern_trend(Uuid::now_v7(), None, None, Bucket::Day).await.unwrap().is_empty());
    store.close().await;
}
