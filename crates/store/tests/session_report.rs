#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Mentor funnel and the leads list on both backends: counts per status, linked and with contact over a
//! creation period and an org, every filter, and newest-first keyset pages with no gap or repeat.

use std::collections::HashSet;

use mentorfy_core::{OrgId, Session, SessionId, SessionStatus};
use mentorfy_store::{SessionFunnel, SessionLeadFilter, Store, now};
use mentorfy_test_support::{TestDb, both_backends};
use serde_json::json;
use time::OffsetDateTime;

both_backends!(
    funnel_counts_statuses_links_and_contacts_of_the_period_and_org,
    funnel_of_an_empty_period_is_all_zero,
    leads_filter_by_status_linked_contact_org_and_period,
    leads_pages_newest_first_without_gap_or_repeat,
);

fn org(slug: &str) -> OrgId {
    OrgId::parse(slug).unwrap()
}

/// Inserts a session and gives it the status, link and contact asked for (as the app would, through updates).
async fn add(
    store: &Store,
    org_slug: &str,
    status: SessionStatus,
    linked: bool,
    email: Option<&str>,
    phone: Option<&str>,
) -> SessionId {
    let id = SessionId::new_random();
    let org_id = org(org_slug);
    let session = Session {
        supermemory_container: Session::container_tag(&org_id, id),
        id,
        org_id,
        email: email.map(str::to_owned),
        phone: phone.map(str::to_owned),
        name: Some("Ana".into()),
        clerk_user_id: None,
        context: json!({}),
        status: SessionStatus::InProgress,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
    };
    store.insert_session(&session).await.unwrap();
    store
        .modify_session(id, |s| {
            s.status = status;
            if linked {
                s.clerk_user_id = Some(format!("user_{}", id.as_uuid().simple()));
            }
            Ok::<(), mentorfy_store::StoreError>(())
        })
        .await
        .unwrap()
        .unwrap();
    // Distinct creation times, so the order is not only the id tie-break.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    id
}

async fn funnel_counts_statuses_links_and_contacts_of_the_period_and_org(db: TestDb) {
    let store = db.store().await;
    use SessionStatus::*;
    // Before the period: not counted.
    add(&store, "rafael-tatts", Completed, true, Some("old@example.com"), None).await;
    let from = now();
    add(&store, "rafael-tatts", InProgress, false, None, None).await;
    add(&store, "rafael-tatts", InProgress, false, Some("a@example.com"), None).await;
    add(&store, "rafael-tatts", Completed, true, Some("b@example.com"), Some("+15551234567")).await;
    add(&store, "rafael-tatts", Completed, false, None, Some("+15551234568")).await;
    add(&store, "rafael-tatts", Abandoned, false, None, None).await;
    add(&store, "other-org", Completed, true, Some("c@example.com"), None).await;
    let to = now();
    // After the period: not counted.
    add(&store, "rafael-tatts", InProgress, false, None, None).await;

    let all = store.session_funnel(None, from, to).await.unwrap();
    assert_eq!(
        all,
        SessionFunnel { created: 6, in_progress: 2, completed: 3, abandoned: 1, linked: 2, with_contact: 4 }
    );
    let one = store.session_funnel(Some(&org("rafael-tatts")), from, to).await.unwrap();
    assert_eq!(
        one,
        SessionFunnel { created: 5, in_progress: 2, completed: 2, abandoned: 1, linked: 1, with_contact: 3 }
    );
}

async fn funnel_of_an_empty_period_is_all_zero(db: TestDb) {
    let store = db.store().await;
    add(&store, "rafael-tatts", SessionStatus::Completed, true, Some("a@example.com"), None).await;
    let later = now() + time::Duration::hours(1);
    let funnel = store.session_funnel(None, later, later + time::Duration::hours(1)).await.unwrap();
    assert_eq!(funnel, SessionFunnel::default());
}

async fn leads_filter_by_status_linked_contact_org_and_period(db: TestDb) {
    let store = db.store().await;
    use SessionStatus::*;
    let old = add(&store, "rafael-tatts", InProgress, false, None, None).await;
    let from = now();
    let a = add(&store, "rafael-tatts", Completed, true, Some("a@example.com"), None).await;
    let b = add(&store, "rafael-tatts", Completed, false, None, Some("+15551234567")).await;
    let c = add(&store, "rafael-tatts", Abandoned, false, None, None).await;
    let d = add(&store, "other-org", InProgress, true, None, None).await;

    let ids = |f: SessionLeadFilter| {
        let store = store.clone();
        async move {
            store
                .list_session_leads(&SessionLeadFilter { limit: 100, ..f })
                .await
                .unwrap()
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(SessionLeadFilter::default()).await, vec![d, c, b, a, old], "newest first");
    assert_eq!(ids(SessionLeadFilter { from: Some(from), ..Default::default() }).await, vec![d, c, b, a]);
    assert_eq!(ids(SessionLeadFilter { to: Some(from), ..Default::default() }).await, vec![old]);
    assert_eq!(ids(SessionLeadFilter { status: Some(Completed), ..Default::default() }).await, vec![b, a]);
    assert_eq!(ids(SessionLeadFilter { linked: Some(true), ..Default::default() }).await, vec![d, a]);
    assert_eq!(ids(SessionLeadFilter { linked: Some(false), ..Default::default() }).await, vec![c, b, old]);
    assert_eq!(ids(SessionLeadFilter { has_contact: Some(true), ..Default::default() }).await, vec![b, a]);
    assert_eq!(ids(SessionLeadFilter { has_contact: Some(false), ..Default::default() }).await, vec![d, c, old]);
    assert_eq!(ids(SessionLeadFilter { org: Some(org("other-org")), ..Default::default() }).await, vec![d]);
    assert_eq!(
        ids(SessionLeadFilter {
            org: Some(org("rafael-tatts")),
            status: Some(Completed),
            linked: Some(false),
            has_contact: Some(true),
            from: Some(from),
            ..Default::default()
        })
        .await,
        vec![b]
    );
    let leads = store.list_session_leads(&SessionLeadFilter { limit: 0, ..Default::default() }).await.unwrap();
    assert!(leads.is_empty(), "limit 0 returns nothing");
    let got = store
        .list_session_leads(&SessionLeadFilter { status: Some(Completed), limit: 1, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(got[0].email, None);
    assert_eq!(got[0].phone.as_deref(), Some("+15551234567"));
}

async fn leads_pages_newest_first_without_gap_or_repeat(db: TestDb) {
    let store = db.store().await;
    let mut created = Vec::new();
    for i in 0..23 {
        let status = if i % 3 == 0 { SessionStatus::Completed } else { SessionStatus::InProgress };
        let id = SessionId::new_random();
        let org_id = org("rafael-tatts");
        let session = Session {
            supermemory_container: Session::container_tag(&org_id, id),
            id,
            org_id,
            email: None,
            phone: None,
            name: None,
            clerk_user_id: None,
            context: json!({}),
            status,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        };
        // No pause: several sessions may share a microsecond, and the id breaks the tie.
        created.push(store.insert_session(&session).await.unwrap());
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page =
            store.list_session_leads(&SessionLeadFilter { before, limit: 5, ..Default::default() }).await.unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|s| (s.created_at, s.id));
        seen.extend(page);
    }
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().map(|s| s.id).collect::<HashSet<_>>().len(), 23, "no repeats");
    for pair in seen.windows(2) {
        assert!(
            (pair[0].created_at, pair[0].id.as_uuid()) > (pair[1].created_at, pair[1].id.as_uuid()),
            "strictly newest first"
        );
    }
    created.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id.as_uuid())));
    assert_eq!(seen, created, "what was written is what is read, in order");
}
