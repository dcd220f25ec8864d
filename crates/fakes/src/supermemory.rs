//! A fake Supermemory API for tests (specs/supermemory.md): `POST /v4/memories` (404 for a container tag that
//! does not exist yet), `POST /v3/documents` (creates the container; `customId` replaces; "extraction" is
//! immediate: the content becomes one memory), `POST /v4/search` (word-overlap scoring), `DELETE /v4/memories`
//! (soft delete; 404 unknown, 409 already forgotten), `DELETE /v3/documents/{id}` (by id or customId). Checks the bearer key, records every request, and fails
//! on demand (the next N requests answer a status, with `Retry-After` if asked). Never used by production code.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The key the fake accepts (`Authorization: Bearer sm_test_key`).
pub const API_KEY: &str = "sm_test_key";

/// One request the fake received, whatever it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct SupermemoryRequest {
    pub method: String,
    pub path: String,
    /// Every request header, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Null` when absent or not JSON).
    pub body: Value,
    /// The status the fake answered.
    pub status: u16,
}

impl SupermemoryRequest {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A memory the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMemory {
    pub id: String,
    pub container_tag: String,
    pub content: String,
    pub metadata: Value,
    /// Set for memories written through `/v3/documents` with a `customId`.
    pub custom_id: Option<String>,
    /// The `/v3/documents` document it came from, if any.
    pub document_id: Option<String>,
    pub forgotten: bool,
    pub created_at: String,
}

#[derive(Default)]
struct Shared {
    requests: Vec<SupermemoryRequest>,
    failures: VecDeque<(u16, Option<u64>)>,
    containers: HashSet<String>,
    memories: Vec<FakeMemory>,
    next_id: u64,
}

impl Shared {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{:06}", self.next_id)
    }
}

/// The fake server; stops when dropped.
pub struct FakeSupermemory {
    url: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSupermemory {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeSupermemory {
    /// Starts on `127.0.0.1:0`.
    #[allow(clippy::expect_used)] // a test fixture that cannot bind loopback cannot do anything useful
    pub async fn start() -> FakeSupermemory {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Supermemory");
        let addr = listener.local_addr().expect("local address of the fake Supermemory");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .route("/v4/memories", post(handle).delete(handle))
            .route("/v3/documents", post(handle))
            .route("/v3/documents/{id}", axum::routing::delete(handle))
            .route("/v4/search", post(handle))
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSupermemory { url: format!("http://{addr}"), shared, server }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `n` requests are answered `status` with an error body (and `Retry-After: secs` when given);
    /// they are recorded but change nothing.
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        let mut shared = self.lock();
        for _ in 0..n {
            shared.failures.push_back((status, retry_after));
        }
    }

    /// Makes a container tag exist, as if documents had been added to it earlier.
    pub fn create_container(&self, tag: &str) {
        self.lock().containers.insert(tag.to_owned());
    }

    pub fn requests(&self) -> Vec<SupermemoryRequest> {
        self.lock().requests.clone()
    }

    /// The memories of `tag` that are not forgotten, in insertion order.
    pub fn memories(&self, tag: &str) -> Vec<FakeMemory> {
        self.lock().memories.iter().filter(|m| m.container_tag == tag && !m.forgotten).cloned().collect()
    }

    /// Every memory, forgotten ones included.
    pub fn all_memories(&self) -> Vec<FakeMemory> {
        self.lock().memories.clone()
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message, "details": "fake supermemory" }))).into_response()
}

fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2).map(str::to_lowercase).collect()
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let response = answer(&mut s, &method, uri.path(), &headers, &body);
    s.requests.push(SupermemoryRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
        status: response.status().as_u16(),
    });
    response
}

fn answer(s: &mut Shared, method: &Method, path: &str, headers: &HeaderMap, body: &Value) -> Response {
    if let Some((status, retry_after)) = s.failures.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = error(status, "injected failure");
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        return response;
    }
    let authorised =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {API_KEY}"));
    if !authorised {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let tag = body.get("containerTag").and_then(Value::as_str).map(str::to_owned);
    let tag_ok = |t: &str| {
        !t.is_empty()
            && t.len() <= 100
            && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b':')
    };
    if tag.as_deref().is_some_and(|t| !tag_ok(t)) {
        return error(StatusCode::BAD_REQUEST, "Invalid containerTag");
    }
    match (method.as_str(), path) {
        ("POST", "/v4/memories") => {
            let Some(tag) = tag else { return error(StatusCode::BAD_REQUEST, "containerTag is required") };
            let Some(items) =
                body.get("memories").and_then(Value::as_array).filter(|m| !m.is_empty() && m.len() <= 100)
            else {
                return error(StatusCode::BAD_REQUEST, "memories must hold 1..100 items");
            };
            if !s.containers.contains(&tag) {
                return error(StatusCode::NOT_FOUND, "Space not found for the given containerTag");
            }
            let mut created = Vec::new();
            for item in items {
                let Some(content) = item.get("content").and_then(Value::as_str).filter(|c| !c.is_empty()) else {
                    return error(StatusCode::BAD_REQUEST, "memories[].content is required");
                };
                let id = s.id("mem");
                let memory = FakeMemory {
                    id: id.clone(),
                    container_tag: tag.clone(),
                    content: content.to_owned(),
                    metadata: item.get("metadata").cloned().unwrap_or(Value::Null),
                    custom_id: None,
                    document_id: None,
                    forgotten: false,
                    created_at: now(),
                };
                created.push(json!({
                    "id": id, "memory": memory.content, "isStatic": item.get("isStatic").cloned().unwrap_or(json!(false)),
                    "createdAt": memory.created_at, "forgetAfter": null, "forgetReason": null, "metadata": memory.metadata,
                }));
                s.memories.push(memory);
            }
            (StatusCode::CREATED, axum::Json(json!({ "documentId": null, "memories": created }))).into_response()
        }
        ("POST", "/v3/documents") => {
            const ALLOWED: [&str; 7] =
                ["content", "containerTag", "customId", "metadata", "entityContext", "taskType", "dreaming"];
            if let Some(unknown) = body.as_object().and_then(|o| o.keys().find(|k| !ALLOWED.contains(&k.as_str()))) {
                return error(StatusCode::BAD_REQUEST, &format!("Unrecognized key: {unknown}"));
            }
            let Some(content) = body.get("content").and_then(Value::as_str).filter(|c| !c.is_empty()) else {
                return error(StatusCode::BAD_REQUEST, "content is required");
            };
            let tag = tag.unwrap_or_else(|| "sm_project_default".to_owned());
            let custom_id = body.get("customId").and_then(Value::as_str).map(str::to_owned);
            s.containers.insert(tag.clone());
            // The same customId replaces the document (and the memory extracted from it).
            let existing = custom_id.as_ref().and_then(|c| {
                s.memories
                    .iter()
                    .position(|m| m.custom_id.as_ref() == Some(c) && m.container_tag == tag && !m.forgotten)
            });
            let document_id = match existing {
                Some(i) => {
                    let m = &mut s.memories[i];
                    m.content = content.to_owned();
                    m.metadata = body.get("metadata").cloned().unwrap_or(Value::Null);
                    m.document_id.clone().unwrap_or_default()
                }
                None => {
                    let document_id = s.id("doc");
                    let id = s.id("mem");
                    s.memories.push(FakeMemory {
                        id,
                        container_tag: tag,
                        content: content.to_owned(),
                        metadata: body.get("metadata").cloned().unwrap_or(Value::Null),
                        custom_id,
                        document_id: Some(document_id.clone()),
                        forgotten: false,
                        created_at: now(),
                    });
                    document_id
                }
            };
            (StatusCode::OK, axum::Json(json!({ "id": document_id, "status": "queued" }))).into_response()
        }
        ("POST", "/v4/search") => {
            let Some(q) = body.get("q").and_then(Value::as_str).filter(|q| !q.is_empty()) else {
                return error(StatusCode::BAD_REQUEST, "q is required");
            };
            let limit = body.get("limit").and_then(Value::as_u64).unwrap_or(10).clamp(1, 100) as usize;
            let query = words(q);
            let mut scored: Vec<(f64, &FakeMemory)> = s
                .memories
                .iter()
                .filter(|m| !m.forgotten && tag.as_deref().is_none_or(|t| t == m.container_tag))
                .map(|m| {
                    let overlap = words(&m.content).intersection(&query).count() as f64;
                    (if query.is_empty() { 0.0 } else { overlap / query.len() as f64 }, m)
                })
                .filter(|(score, _)| *score > 0.0) // `threshold` is ignored: overlap is not a calibrated similarity
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let results: Vec<Value> = scored
                .into_iter()
                .take(limit)
                .map(|(score, m)| {
                    json!({ "id": m.id, "memory": m.content, "metadata": m.metadata, "updatedAt": m.created_at,
                            "similarity": score, "version": 1, "context": { "parents": [], "children": [] } })
                })
                .collect();
            let total = results.len();
            (StatusCode::OK, axum::Json(json!({ "results": results, "timing": 3, "total": total }))).into_response()
        }
        ("DELETE", "/v4/memories") => {
            let Some(tag) = tag else { return error(StatusCode::BAD_REQUEST, "containerTag is required") };
            let id = body.get("id").and_then(Value::as_str);
            let content = body.get("content").and_then(Value::as_str);
            if id.is_none() && content.is_none() {
                return error(StatusCode::BAD_REQUEST, "id or content is required");
            }
            let found = s.memories.iter_mut().find(|m| {
                m.container_tag == tag && (id.is_some_and(|i| i == m.id) || content.is_some_and(|c| c == m.content))
            });
            match found {
                None => error(StatusCode::NOT_FOUND, "Memory not found"),
                Some(m) if m.forgotten => error(StatusCode::CONFLICT, "Memory already forgotten"),
                Some(m) => {
                    m.forgotten = true;
                    (StatusCode::OK, axum::Json(json!({ "id": m.id, "forgotten": true }))).into_response()
                }
            }
        }
        ("DELETE", p) if p.starts_with("/v3/documents/") => {
            let id = &p["/v3/documents/".len()..];
            let before = s.memories.len();
            s.memories.retain(|m| m.custom_id.as_deref() != Some(id) && m.document_id.as_deref() != Some(id));
            if s.memories.len() == before {
                error(StatusCode::NOT_FOUND, "Document not found")
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    }
}
