//! `TestApp`: the real application (same `prepare` and `serve` as the binary) on 127.0.0.1:0 with its own
//! database, plus a plain HTTP client.

use std::net::SocketAddr;
use std::sync::Arc;

use mentorfy_core::Config;
use mentorfy_store::Store;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::db::TestDb;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub store: Store,
    /// The running app's state (its services: API keys, jobs, …).
    pub state: mentorfy_web::AppState,
    pub db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(db: TestDb) -> Self {
        Self::spawn_with(db, &[]).await
    }

    /// Starts the app with these configuration variables on top of the test database.
    pub async fn spawn_with(db: TestDb, vars: &[(&str, &str)]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = db.url.clone();
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let config = Config::from_sources(None, move |name| {
            if let Some((_, v)) = vars.iter().find(|(k, _)| k == name) {
                return Some(v.clone());
            }
            match name {
                "DATABASE_URL" => Some(url.clone()),
                "MENTORFY_ADDR" => Some("127.0.0.1:0".into()),
                _ => None,
            }
        })
        .expect("test configuration is valid");
        let state = mentorfy_web::prepare(Arc::new(config)).await.expect("app prepares");
        let store = state.store().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let state_for_test = state.clone();
        let handle = tokio::spawn(mentorfy_web::serve(listener, state, async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { addr, client, store, state: state_for_test, db, stop: Some(tx), handle: Some(handle) }
    }

    /// Creates a project API key (environment `production` unless given) and returns the full key.
    pub async fn api_key(&self, environment: Option<&str>) -> String {
        self.state.admin().api_keys.create("test", environment, None).await.expect("create API key").key
    }

    /// Creates a local admin account (its password hash is a placeholder: it cannot log in) and returns an admin
    /// token for it, as `POST /api/v1/auth/login` would issue.
    pub async fn admin_token(&self) -> String {
        let email = format!("admin-{}@example.com", uuid::Uuid::now_v7().simple());
        let admin = self
            .store
            .create_admin(&email, "$argon2id$v=19$m=19456,t=2,p=1$placeholder$placeholder")
            .await
            .expect("admin");
        self.state.admin().verifier.issue_local(admin.id, &admin.email).expect("token").token
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request")
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client.patch(self.url(path)).json(body).send().await.expect("request")
    }

    /// Creates a session for `rafael-tatts` and returns its id.
    pub async fn create_session(&self, body: Value) -> String {
        let res = self.post_json("/api/session", &body).await;
        assert_eq!(res.status().as_u16(), 201, "create session");
        let v: Value = res.json().await.expect("json");
        v["sessionId"].as_str().expect("sessionId").to_owned()
    }

    /// Graceful stop, as on SIGTERM; returns what `serve` returned.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.handle.take() {
            Some(h) => h.await.expect("serve task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads a response as JSON, asserting its status first (with the body in the message when it differs).
pub async fn expect_json(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let text = res.text().await.expect("body");
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts the error envelope shape and returns `error`.
pub async fn expect_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let v = expect_json(res, status).await;
    let err = v.get("error").cloned().unwrap_or_else(|| panic!("no error envelope: {v}"));
    assert_eq!(err["code"], code, "{v}");
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(err.as_object().is_some_and(|o| o.contains_key("details") && o.len() == 3), "{v}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    err
}
