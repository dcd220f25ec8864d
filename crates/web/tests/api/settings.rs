//! Alert settings over HTTP (issue 7) on both backends: the webhook is write-only (shown masked, never returned),
//! thresholds merge over the `SENSEI_ALERT_*` defaults, updates are idempotent, `null` clears, bad payloads are 400s
//! naming the field and store nothing, and the test alert says when no webhook is configured.

use mentorfy_test_support::{TestApp, TestDb, both_backends, expect_error, expect_json};
use serde_json::{Value, json};

both_backends!(
    the_webhook_is_write_only_and_shown_masked,
    thresholds_override_the_defaults_idempotently,
    bad_settings_are_refused_and_change_nothing,
    test_alert_needs_a_webhook_and_a_valid_url,
);

const SECRET_PART: &str = "xoxbSECRETtoken123";

fn slack_url() -> String {
    format!("https://hooks.slack.com/services/T0123ABC/B0456DEF/{SECRET_PART}")
}

async fn put(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.client.put(app.url("/api/v1/settings")).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn get(app: &TestApp, token: &str) -> Value {
    expect_json(app.client.get(app.url("/api/v1/settings")).bearer_auth(token).send().await.unwrap(), 200).await
}

async fn the_webhook_is_write_only_and_shown_masked(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    let empty = get(&app, &token).await;
    assert!(empty["slack_webhook_url"].is_null() && empty["slack_webhook_source"].is_null(), "{empty}");

    let saved = expect_json(put(&app, &token, json!({"slack_webhook_url": slack_url()})).await, 200).await;
    let text = saved.to_string();
    assert!(!text.contains(SECRET_PART), "the secret came back: {text}");
    assert_eq!(saved["slack_webhook_source"], "settings");
    let masked = saved["slack_webhook_url"].as_str().unwrap();
    assert!(masked.starts_with("https://hooks.slack.com/services/T") && masked.ends_with("****"), "{masked}");
    assert_eq!(get(&app, &token).await, saved, "GET shows what PUT returned");
    assert_eq!(app.store.alert_settings().await.unwrap().slack_webhook_url, Some(slack_url()), "stored as given");

    // Leaving the field out keeps it; null removes it.
    expect_json(put(&app, &token, json!({"alert_thresholds": {"health_below": 30}})).await, 200).await;
    assert_eq!(app.store.alert_settings().await.unwrap().slack_webhook_url, Some(slack_url()));
    let cleared = expect_json(put(&app, &token, json!({"slack_webhook_url": null})).await, 200).await;
    assert!(cleared["slack_webhook_url"].is_null());
    assert_eq!(app.store.alert_settings().await.unwrap().slack_webhook_url, None);
    app.stop().await.unwrap();
}

async fn thresholds_override_the_defaults_idempotently(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    let defaults = get(&app, &token).await["effective_thresholds"].clone();
    assert_eq!(defaults["min_severity"], "high");
    assert_eq!(defaults["health_below"].as_f64(), Some(40.0));
    assert_eq!(defaults["failure_rate"], json!({"share": 0.25, "window_secs": 3600}));

    let body = json!({"alert_thresholds": {"min_severity": "medium", "failure_rate": "off", "min_conversations": 10}});
    let first = expect_json(put(&app, &token, body.clone()).await, 200).await;
    let second = expect_json(put(&app, &token, body).await, 200).await;
    assert_eq!(first, second, "the same update twice is one update");
    let t = &second["effective_thresholds"];
    assert_eq!(t["min_severity"], "medium");
    assert_eq!(t["failure_rate"], "off");
    assert_eq!(t["min_conversations"], 10);
    assert_eq!(t["health_below"].as_f64(), Some(40.0), "not overridden: the default stays");
    let reset = expect_json(put(&app, &token, json!({"alert_thresholds": null})).await, 200).await;
    assert_eq!(reset["effective_thresholds"], defaults);
    assert!(reset["alert_thresholds"].is_null());
    app.stop().await.unwrap();
}

async fn bad_settings_are_refused_and_change_nothing(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    expect_json(
        put(&app, &token, json!({"slack_webhook_url": slack_url(), "alert_thresholds": {"health_below": 30}})).await,
        200,
    )
    .await;
    let before = app.store.alert_settings().await.unwrap();
    for (body, field) in [
        (json!({"slack_webhook_url": "http://hooks.slack.com/services/T/B/x"}), "slack_webhook_url"),
        (json!({"slack_webhook_url": "https://10.0.0.7/hook"}), "slack_webhook_url"),
        (json!({"slack_webhook_url": "not a url"}), "slack_webhook_url"),
        // A valid URL next to a bad threshold: nothing is stored.
        (
            json!({"slack_webhook_url": "https://hooks.slack.com/services/T9/B9/other", "alert_thresholds": {"health_below": 150}}),
            "alert_thresholds.health_below",
        ),
        (json!({"alert_thresholds": {"min_severity": "urgent"}}), "alert_thresholds.min_severity"),
        (
            json!({"alert_thresholds": {"failure_rate": {"share": 2, "window_secs": 3600}}}),
            "alert_thresholds.failure_rate.share",
        ),
        (
            json!({"alert_thresholds": {"failure_rate": {"share": 0.2, "window_secs": 5}}}),
            "alert_thresholds.failure_rate.window_secs",
        ),
        (json!({"alert_thresholds": {"colour": "red"}}), "alert_thresholds.colour"),
        (json!({"alert_thresholds": [1, 2]}), "alert_thresholds"),
    ] {
        let e = expect_error(put(&app, &token, body.clone()).await, 400, "invalid_field").await;
        assert_eq!(e["details"]["field"], field, "{body}: {e}");
        assert!(!e.to_string().contains("services/T9"), "the refused URL is not echoed: {e}");
    }
    let res = put(&app, &token, json!({"slack_webhook": slack_url()})).await;
    assert_eq!(res.status(), 400, "unknown fields are refused");
    assert_eq!(app.store.alert_settings().await.unwrap(), before, "nothing changed");
    let res = app.client.put(app.url("/api/v1/settings")).json(&json!({})).send().await.unwrap();
    expect_error(res, 401, "unauthorized").await;
    app.stop().await.unwrap();
}

async fn test_alert_needs_a_webhook_and_a_valid_url(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let token = app.admin_token().await;
    let post = |body: Option<Value>| {
        let mut req = app.client.post(app.url("/api/v1/settings/test-alert")).bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    expect_error(post(None).await.unwrap(), 409, "not_configured").await;
    let e = expect_error(
        post(Some(json!({"slack_webhook_url": "https://127.0.0.1/hook"}))).await.unwrap(),
        400,
        "invalid_field",
    )
    .await;
    assert_eq!(e["details"]["field"], "slack_webhook_url");
    assert!(app.store.list_alert_events(10).await.unwrap().is_empty(), "a refused test sends and records nothing");
    app.stop().await.unwrap();
}
