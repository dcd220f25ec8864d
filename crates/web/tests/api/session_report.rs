//! The Mentor funnel and leads over HTTP on both backends: funnel counts for sessions made through the real session
//! endpoints, filters, newest-first cursor pages with no gap or repeat, the CSV export and its escaping, and the
//! refusals (401 without an admin token, 400 naming the bad parameter).

use std::collections::HashSet;

use mentorfy_core::{OrgId, Session, SessionId, SessionStatus};
use mentorfy_fakes::clerk::{ClerkKeys, session_token};
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

both_backends!(
    funnel_and_filters_follow_sessions_made_through_the_api,
    leads_page_newest_first_without_gap_or_repeat,
    csv_exports_every_matching_lead_escaped,
    session_report_needs_an_admin_and_a_valid_query,
);

async fn clerk_app(db: TestDb) -> TestApp {
    let pem = ClerkKeys::primary().public_pem().to_owned();
    TestApp::spawn_with(db, &[("CLERK_JWT_KEY", &pem), ("CLERK_AUTHORIZED_PARTIES", "http://localhost:3000")]).await
}

async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn complete(app: &TestApp, id: &str) {
    expect_json(app.post_json(&format!("/api/session/{id}/complete"), &json!({})).await, 200).await;
}

async fn link(app: &TestApp, id: &str, user: &str) {
    let token = ClerkKeys::primary().sign(&session_token(user));
    let res = app
        .client
        .post(app.url(&format!("/api/session/{id}/link")))
        .bearer_auth(token)
        .json(&json!({"clerkUserId": user}))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
}

/// Ids of a page's leads, in order.
fn lead_ids(body: &Value) -> Vec<String> {
    body["leads"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap().to_owned()).collect()
}

/// The same ids, owned, for comparing with [`lead_ids`].
fn owned(ids: &[&String]) -> Vec<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

async fn funnel_and_filters_follow_sessions_made_through_the_api(db: TestDb) {
    let app = clerk_app(db).await;
    let token = app.admin_token().await;
    // Six sessions: completed and linked, completed with a phone, in progress and bare, in progress and linked,
    // abandoned, and one that gets its email by PATCH and then completes.
    let s1 = app.create_session(json!({"orgId": "rafael-tatts", "name": "Ana", "email": "ana@example.com"})).await;
    complete(&app, &s1).await;
    link(&app, &s1, "user_ana").await;
    let s2 = app.create_session(json!({"orgId": "rafael-tatts", "phone": "+1 555 123 4567"})).await;
    complete(&app, &s2).await;
    let s3 = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let s4 = app.create_session(json!({"orgId": "rafael-tatts", "name": "Bea", "email": "bea@example.com"})).await;
    link(&app, &s4, "user_bea").await;
    let s5 = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let s6 = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let patch = json!({"email": "Cy@Example.com", "name": "Cy"});
    expect_json(app.patch_json(&format!("/api/session/{s6}"), &patch).await, 200).await;
    complete(&app, &s6).await;
    // s5 goes idle and the sweep abandons it (the others are fresh, or not in progress).
    let now = OffsetDateTime::now_utc();
    app.store.set_session_updated_at(s5.parse().unwrap(), now - Duration::days(2)).await.unwrap();
    assert_eq!(app.store.mark_abandoned_sessions(now - Duration::days(1)).await.unwrap(), 1);

    let body = expect_json(get(&app, &token, "/api/v1/sessions?range=24h").await, 200).await;
    assert_eq!(
        body["funnel"],
        json!({"created": 6, "inProgress": 2, "completed": 3, "abandoned": 1, "linked": 2, "withContact": 4,
               "completionRate": 0.5, "linkRate": 0.3333})
    );
    assert_eq!(lead_ids(&body), owned(&[&s6, &s5, &s4, &s3, &s2, &s1]), "newest first");
    assert!(body["nextCursor"].is_null());
    let from = OffsetDateTime::parse(body["from"].as_str().unwrap(), &time::format_description::well_known::Rfc3339);
    let to = OffsetDateTime::parse(body["to"].as_str().unwrap(), &time::format_description::well_known::Rfc3339);
    assert_eq!(to.unwrap() - from.unwrap(), Duration::hours(24));
    let ana = &body["leads"][5];
    assert_eq!(
        (ana["name"].as_str(), ana["email"].as_str(), ana["status"].as_str(), ana["linked"].as_bool()),
        (Some("Ana"), Some("ana@example.com"), Some("completed"), Some(true))
    );
    assert_eq!(body["leads"][4]["phone"], "+15551234567");
    assert_eq!(body["leads"][0]["email"], "cy@example.com", "normalised by the session API");
    assert!(ana["createdAt"].is_string() && ana["updatedAt"].is_string());
    assert!(!body.to_string().contains("user_ana"), "the Clerk user id is never shown: {body}");

    // Filters narrow the leads; the funnel stays that of the period.
    for (query, expected) in [
        ("status=completed", vec![&s6, &s2, &s1]),
        ("status=in_progress", vec![&s4, &s3]),
        ("status=abandoned", vec![&s5]),
        ("linked=true", vec![&s4, &s1]),
        ("linked=false", vec![&s6, &s5, &s3, &s2]),
        ("has_contact=true", vec![&s6, &s4, &s2, &s1]),
        ("has_contact=false", vec![&s5, &s3]),
        ("status=completed&linked=false&has_contact=true", vec![&s6, &s2]),
        ("org=rafael-tatts&linked=true", vec![&s4, &s1]),
        ("org=someone-else", vec![]),
    ] {
        let body = expect_json(get(&app, &token, &format!("/api/v1/sessions?{query}")).await, 200).await;
        assert_eq!(lead_ids(&body), owned(&expected), "{query}");
        if !query.starts_with("org=someone") {
            assert_eq!(body["funnel"]["created"], 6, "{query}");
        }
    }
    let other = expect_json(get(&app, &token, "/api/v1/sessions?org=someone-else").await, 200).await;
    assert_eq!(other["funnel"]["created"], 0);
    assert!(other["funnel"]["completionRate"].is_null(), "no rate without sessions");

    // A period before any of them: nothing.
    let old = "/api/v1/sessions?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z";
    let body = expect_json(get(&app, &token, old).await, 200).await;
    assert_eq!((body["funnel"]["created"].as_i64(), lead_ids(&body).len()), (Some(0), 0));
    assert_eq!(body["from"], "2020-01-01T00:00:00Z");

    // The function the dashboard calls gives the same view.
    let report = mentorfy_web::api::session_report::session_report(&app.state, Some("status=completed")).await.unwrap();
    assert_eq!((report.funnel.created, report.funnel.completed, report.leads.len()), (6, 3, 3));
    app.stop().await.unwrap();
}

async fn leads_page_newest_first_without_gap_or_repeat(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    let mut created = Vec::new();
    for i in 0..23 {
        let id = app.create_session(json!({"orgId": "rafael-tatts", "name": format!("Lead {i}")})).await;
        if i % 4 == 0 {
            complete(&app, &id).await;
        }
        created.push(id);
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/sessions?range=7d&limit=5".to_owned();
    let mut pages = 0;
    loop {
        let body = expect_json(get(&app, &token, &path).await, 200).await;
        pages += 1;
        assert_eq!(body["funnel"]["created"], 23);
        assert_eq!(body["funnel"]["completed"], 6);
        seen.extend(lead_ids(&body));
        match body["nextCursor"].as_str() {
            Some(cur) => path = format!("/api/v1/sessions?range=7d&limit=5&cursor={cur}"),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(seen.len(), 23);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23, "no repeats");
    created.reverse();
    assert_eq!(seen, created, "newest first, no gap");

    // A filtered listing pages the same way.
    let mut completed = Vec::new();
    let mut path = "/api/v1/sessions?status=completed&limit=2".to_owned();
    loop {
        let body = expect_json(get(&app, &token, &path).await, 200).await;
        completed.extend(lead_ids(&body));
        match body["nextCursor"].as_str() {
            Some(cur) => path = format!("/api/v1/sessions?status=completed&limit=2&cursor={cur}"),
            None => break,
        }
    }
    let expected: Vec<String> = created.iter().rev().step_by(4).rev().cloned().collect();
    assert_eq!(completed, expected);
    app.stop().await.unwrap();
}

async fn csv_exports_every_matching_lead_escaped(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    let plain = app.create_session(json!({"orgId": "rafael-tatts", "name": "Ana", "email": "ana@example.com"})).await;
    let formula = app
        .create_session(json!({"orgId": "rafael-tatts", "name": "=HYPERLINK(\"http://evil.example\",\"x\")", "phone": "+15551234567"}))
        .await;
    let comma =
        app.create_session(json!({"orgId": "rafael-tatts", "name": "Silva, \"Ana\"", "email": "s@example.com"})).await;
    let bare = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    // A line break can only come from elsewhere (the API refuses control characters): write it to the store.
    let org = OrgId::parse("rafael-tatts").unwrap();
    let id = SessionId::new_random();
    let stored = Session {
        supermemory_container: Session::container_tag(&org, id),
        id,
        org_id: org,
        email: Some("multi@example.com".into()),
        phone: None,
        name: Some("two\nlines".into()),
        clerk_user_id: None,
        context: json!({}),
        status: SessionStatus::InProgress,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
    };
    let multi = app.store.insert_session(&stored).await.unwrap().id.to_string();

    // limit and cursor do not cut the export short.
    let res = get(&app, &token, "/api/v1/sessions?format=csv&has_contact=true&limit=1").await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = res.headers()["content-disposition"].to_str().unwrap().to_owned();
    let today = OffsetDateTime::now_utc().date();
    assert_eq!(disposition, format!("attachment; filename=\"mentorfy-leads-{today}.csv\""));
    let text = res.text().await.unwrap();
    let records: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(records[0], "id,name,email,phone,status,linked,created_at,updated_at");
    assert_eq!(records.len(), 1 + 4 + 1, "header, four leads with a contact, and the final empty string: {text}");
    assert_eq!(records[5], "");
    assert!(records[1].starts_with(&format!("{multi},\"two\nlines\",multi@example.com,,in_progress,false,")), "{text}");
    assert!(
        records[2].starts_with(&format!("{comma},\"Silva, \"\"Ana\"\"\",s@example.com,,in_progress,false,")),
        "{text}"
    );
    assert!(
        records[3].starts_with(&format!(
            "{formula},\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",,+15551234567,in_progress,false,"
        )),
        "formulas are neutralised, the E.164 phone kept: {text}"
    );
    assert!(records[4].starts_with(&format!("{plain},Ana,ana@example.com,,in_progress,false,")), "{text}");
    assert!(!text.contains(&bare), "filtered out");

    // Every lead of the period, with created_at and updated_at as RFC 3339.
    let all = get(&app, &token, "/api/v1/sessions?format=csv&range=24h").await.text().await.unwrap();
    assert_eq!(all.matches("\r\n").count(), 1 + 5, "{all}");
    let last = all.trim_end().rsplit("\r\n").next().unwrap();
    assert!(last.starts_with(&format!("{plain},")));
    let times: Vec<&str> = last.rsplitn(3, ',').take(2).collect();
    for t in times {
        OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    }
    // An empty export is the header alone.
    let none = get(&app, &token, "/api/v1/sessions?format=csv&status=abandoned").await.text().await.unwrap();
    assert_eq!(none, "id,name,email,phone,status,linked,created_at,updated_at\r\n");
    app.stop().await.unwrap();
}

async fn session_report_needs_an_admin_and_a_valid_query(db: TestDb) {
    let app = TestApp::spawn(db).await;
    expect_error(app.get("/api/v1/sessions").await, 401, "unauthorized").await;
    expect_error(app.get("/api/v1/sessions?format=csv").await, 401, "unauthorized").await;
    expect_error(get(&app, "not-a-token", "/api/v1/sessions").await, 401, "unauthorized").await;
    let token = app.admin_token().await;
    for (query, field) in [
        ("status=done", "status"),
        ("linked=yes", "linked"),
        ("has_contact=1", "has_contact"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("range=1y", "range"),
        ("range=7d&from=2026-11-01T00:00:00Z", "range"),
        ("from=monday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z", "from"),
        ("cursor=abc", "cursor"),
        ("format=xlsx", "format"),
        ("org=Not%20A%20Slug", "org"),
        ("sort=name", "sort"),
        ("status=completed&status=abandoned", "status"),
    ] {
        let e = expect_error(get(&app, &token, &format!("/api/v1/sessions?{query}")).await, 400, "invalid_query").await;
        assert_eq!(e["details"]["field"], field, "{query}: {e}");
    }
    // The CSV export refuses the same way (before any body is sent).
    let e =
        expect_error(get(&app, &token, "/api/v1/sessions?format=csv&linked=maybe").await, 400, "invalid_query").await;
    assert_eq!(e["details"]["field"], "linked");
    app.stop().await.unwrap();
}
