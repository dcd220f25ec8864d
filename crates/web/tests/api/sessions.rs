//! The sessions API end to end.

use std::time::Duration;

use mentorfy_core::SessionStatus;
use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};

both_backends!(
    create_then_get_restores_the_session,
    unknown_org_is_a_400_and_stores_nothing,
    contact_fields_are_normalised_on_create_and_patch,
    invalid_contact_is_a_422_that_changes_nothing,
    patch_deep_merges_context,
    patch_null_clears_contact_fields_and_absent_keys_are_kept,
    fifty_concurrent_patches_of_different_keys_keep_all_fifty,
    complete_is_idempotent_and_merges_context,
    unknown_or_malformed_session_ids_are_404,
    context_growing_past_the_limit_is_refused,
    idle_sessions_are_swept_to_abandoned_and_activity_revives_them,
);

async fn create_then_get_restores_the_session(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let res = app.post_json("/api/session", &json!({"orgId": "rafael-tatts", "name": "Ana"})).await;
    let created = expect_json(res, 201).await;
    assert_eq!(created["accountExists"], false);
    assert_eq!(created["returning"], false);
    let id = created["sessionId"].as_str().expect("id");
    let uuid = uuid::Uuid::parse_str(id).expect("uuid");
    assert_eq!(uuid.get_version_num(), 4);

    let got = expect_json(app.get(&format!("/api/session/{id}")).await, 200).await;
    assert_eq!(got["sessionId"], id);
    assert_eq!(got["orgId"], "rafael-tatts");
    assert_eq!(got["name"], "Ana");
    assert_eq!(got["email"], Value::Null);
    assert_eq!(got["context"], json!({}));
    assert_eq!(got["status"], "in_progress");
    assert_eq!(got["linked"], false);
    assert!(got.get("clerkUserId").is_none() && !got.to_string().contains("clerk"), "{got}");
    time::OffsetDateTime::parse(
        got["createdAt"].as_str().expect("createdAt"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("createdAt is RFC 3339");

    let stored = app.store.get_session(id.parse().expect("id")).await.expect("get").expect("stored");
    assert_eq!(stored.supermemory_container, format!("rafael-tatts-{id}"));
}

async fn unknown_org_is_a_400_and_stores_nothing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let err = expect_error(app.post_json("/api/session", &json!({"orgId": "nobody"})).await, 400, "unknown_org").await;
    assert_eq!(err["details"]["field"], "orgId");
    let org = mentorfy_core::OrgId::parse("nobody").expect("slug");
    assert!(app.store.list_sessions(&org, 10).await.expect("list").is_empty());
}

async fn contact_fields_are_normalised_on_create_and_patch(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app
        .create_session(json!({"orgId": "rafael-tatts", "email": "  Ana.Silva@Example.COM ", "phone": "(555) 123-4567", "name": "  Ana  "}))
        .await;
    let got = expect_json(app.get(&format!("/api/session/{id}")).await, 200).await;
    assert_eq!(got["email"], "ana.silva@example.com");
    assert_eq!(got["phone"], "+15551234567");
    assert_eq!(got["name"], "Ana");

    let res = app
        .patch_json(&format!("/api/session/{id}"), &json!({"phone": "+44 20 7946 0958", "email": "NEW@example.org"}))
        .await;
    let patched = expect_json(res, 200).await;
    assert_eq!(patched, json!({"success": true, "sessionId": id, "accountExists": false}));
    let got = expect_json(app.get(&format!("/api/session/{id}")).await, 200).await;
    assert_eq!(got["phone"], "+442079460958");
    assert_eq!(got["email"], "new@example.org");
}

async fn invalid_contact_is_a_422_that_changes_nothing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let err = expect_error(
        app.post_json("/api/session", &json!({"orgId": "rafael-tatts", "email": "not-an-email"})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(err["details"]["field"], "email");

    let id = app.create_session(json!({"orgId": "rafael-tatts", "email": "ana@example.com"})).await;
    let path = format!("/api/session/{id}");
    for (body, field) in [
        (json!({"email": "ana@", "context": {"step": 2}}), "email"),
        (json!({"phone": "12", "context": {"step": 2}}), "phone"),
        (json!({"name": "   ", "context": {"step": 2}}), "name"),
        (json!({"name": "x".repeat(201)}), "name"),
    ] {
        let err = expect_error(app.patch_json(&path, &body).await, 422, "validation_failed").await;
        assert_eq!(err["details"]["field"], field, "{body}");
    }
    let got = expect_json(app.get(&path).await, 200).await;
    assert_eq!(got["email"], "ana@example.com");
    assert_eq!(got["context"], json!({}), "the context in a refused request is not applied");
}

async fn patch_deep_merges_context(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let path = format!("/api/session/{id}");
    let first = json!({"context": {"business": {"rate": 200, "styles": ["fine line"], "city": "Lisbon"}, "goal": "more bookings", "tmp": 1}});
    expect_json(app.patch_json(&path, &first).await, 200).await;
    let second = json!({"context": {"business": {"rate": 300, "styles": ["blackwork", "color"]}, "tmp": null, "stage": {"n": 2}}});
    expect_json(app.patch_json(&path, &second).await, 200).await;
    let got = expect_json(app.get(&path).await, 200).await;
    assert_eq!(
        got["context"],
        json!({"business": {"rate": 300, "styles": ["blackwork", "color"], "city": "Lisbon"}, "goal": "more bookings", "stage": {"n": 2}})
    );
}

async fn patch_null_clears_contact_fields_and_absent_keys_are_kept(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app
        .create_session(
            json!({"orgId": "rafael-tatts", "email": "a@example.com", "phone": "+15551234567", "name": "Ana"}),
        )
        .await;
    let path = format!("/api/session/{id}");
    expect_json(app.patch_json(&path, &json!({"phone": null})).await, 200).await;
    let got = expect_json(app.get(&path).await, 200).await;
    assert_eq!(got["phone"], Value::Null);
    assert_eq!(got["email"], "a@example.com");
    assert_eq!(got["name"], "Ana");
}

async fn fifty_concurrent_patches_of_different_keys_keep_all_fifty(db: TestDb) {
    let app = TestApp::spawn_with(db, &[("MENTORFY_DB_MAX_CONNECTIONS", "8")]).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let path = format!("/api/session/{id}");
    let requests = (0..50).map(|i| {
        let client = app.client.clone();
        let url = app.url(&path);
        async move {
            let body = json!({"context": {format!("answer_{i}"): {"value": i}}});
            client.patch(url).json(&body).send().await.expect("patch").status().as_u16()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let got = expect_json(app.get(&path).await, 200).await;
    let ctx = got["context"].as_object().expect("object");
    assert_eq!(ctx.len(), 50, "lost updates: {}", got["context"]);
    for i in 0..50 {
        assert_eq!(ctx[&format!("answer_{i}")]["value"], i);
    }
}

async fn complete_is_idempotent_and_merges_context(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let path = format!("/api/session/{id}/complete");
    let res = app.post_json(&path, &json!({"context": {"finished": true}})).await;
    assert_eq!(expect_json(res, 200).await, json!({"success": true, "sessionId": id, "status": "completed"}));
    // Again, with an empty body and no content type: still completed, context kept.
    let res = app.client.post(app.url(&path)).send().await.expect("request");
    assert_eq!(expect_json(res, 200).await["status"], "completed");
    let got = expect_json(app.get(&format!("/api/session/{id}")).await, 200).await;
    assert_eq!(got["status"], "completed");
    assert_eq!(got["context"], json!({"finished": true}));
    // Later PATCHes do not reopen a completed session.
    expect_json(app.patch_json(&format!("/api/session/{id}"), &json!({"context": {"x": 1}})).await, 200).await;
    assert_eq!(expect_json(app.get(&format!("/api/session/{id}")).await, 200).await["status"], "completed");
}

async fn unknown_or_malformed_session_ids_are_404(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let unknown = uuid::Uuid::new_v4();
    expect_error(app.get(&format!("/api/session/{unknown}")).await, 404, "not_found").await;
    expect_error(app.get("/api/session/not-a-uuid").await, 404, "not_found").await;
    expect_error(app.patch_json(&format!("/api/session/{unknown}"), &json!({"name": "A"})).await, 404, "not_found")
        .await;
    expect_error(app.post_json(&format!("/api/session/{unknown}/complete"), &json!({})).await, 404, "not_found").await;
}

async fn context_growing_past_the_limit_is_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let path = format!("/api/session/{id}");
    let chunk = "x".repeat(100 * 1024);
    expect_json(app.patch_json(&path, &json!({"context": {"a": chunk}})).await, 200).await;
    let err =
        expect_error(app.patch_json(&path, &json!({"context": {"b": chunk}})).await, 422, "validation_failed").await;
    assert_eq!(err["details"]["field"], "context");
    let got = expect_json(app.get(&path).await, 200).await;
    assert!(got["context"].get("b").is_none() && got["context"].get("a").is_some());
}

async fn idle_sessions_are_swept_to_abandoned_and_activity_revives_them(db: TestDb) {
    let app = TestApp::spawn_with(db, &[("MENTORFY_ABANDON_AFTER", "1h"), ("MENTORFY_SWEEP_INTERVAL", "100ms")]).await;
    let idle = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let fresh = app.create_session(json!({"orgId": "rafael-tatts"})).await;
    let idle_id = idle.parse().expect("id");
    app.store
        .set_session_updated_at(idle_id, time::OffsetDateTime::now_utc() - time::Duration::hours(2))
        .await
        .expect("age");

    let mut status = SessionStatus::InProgress;
    for _ in 0..100 {
        status = app.store.get_session(idle_id).await.expect("get").expect("exists").status;
        if status == SessionStatus::Abandoned {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, SessionStatus::Abandoned, "the server's periodic sweep marked it");
    assert_eq!(expect_json(app.get(&format!("/api/session/{fresh}")).await, 200).await["status"], "in_progress");
    expect_json(app.patch_json(&format!("/api/session/{idle}"), &json!({"context": {"back": true}})).await, 200).await;
    assert_eq!(expect_json(app.get(&format!("/api/session/{idle}")).await, 200).await["status"], "in_progress");
}
