//! The session's memory as Mentor uses it: recall for prompts, the `memory_search` and `knowledge_search`
//! tools, the "what I know about you" listing, and the job bodies that write memories (onboarding answers and
//! finished chat turns). Where memories live is the `MemoryStore` chosen at start-up (embedded or Supermemory).

use std::sync::Arc;

use mentorfy_core::{OrgId, OrgRegistry, Session, SessionId};
use mentorfy_memory::{Container, KnowledgeBase, MemoryError, MemoryHit, MemoryStore, NewMemory, SearchOptions};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::MentorError;
use crate::recall;
use crate::tools::Tool;

/// How many memories a prompt recalls at most (then cut to the token budget).
const PROMPT_MEMORIES: usize = 12;
/// Longest a prompt waits for recall: past it the chat goes on without memories (a slow memory service must not
/// stall every answer).
const RECALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// Results a search tool returns by default and at most.
const TOOL_DEFAULT_LIMIT: usize = 5;
const TOOL_MAX_LIMIT: usize = 20;

/// Memory for Mentor sessions. Cheap to clone.
#[derive(Clone)]
pub struct MemoryService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn MemoryStore>,
    knowledge: Arc<KnowledgeBase>,
    orgs: OrgRegistry,
    token_budget: usize,
}

impl std::fmt::Debug for MemoryService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryService")
            .field("backend", &self.inner.store.backend())
            .field("token_budget", &self.inner.token_budget)
            .finish_non_exhaustive()
    }
}

/// The container of one session's memories: `{org}-{session}`.
pub fn session_container(org: &OrgId, session: SessionId) -> Result<Container, MemoryError> {
    Container::for_session(org.as_str(), &session.to_string())
}

impl MemoryService {
    pub fn new(
        store: Arc<dyn MemoryStore>,
        knowledge: Arc<KnowledgeBase>,
        orgs: OrgRegistry,
        token_budget: usize,
    ) -> Self {
        Self { inner: Arc::new(Inner { store, knowledge, orgs, token_budget }) }
    }

    pub fn backend(&self) -> &'static str {
        self.inner.store.backend()
    }

    pub fn knowledge(&self) -> &KnowledgeBase {
        &self.inner.knowledge
    }

    /// Memories for a prompt, as lines `(date) memory`, best first, within the token budget. Never fails: a
    /// memory outage must not stop a chat, so it is logged and the prompt says there are no memories.
    pub async fn recall_for_prompt(&self, session: &Session, query: &str) -> Vec<String> {
        let options = SearchOptions { limit: PROMPT_MEMORIES, token_budget: Some(self.inner.token_budget) };
        let search = self.search_session(&session.org_id, session.id, query, options);
        match tokio::time::timeout(RECALL_TIMEOUT, search).await {
            Ok(Ok(hits)) => hits.iter().map(|h| format!("({}) {}", day(h.created_at), h.content)).collect(),
            Ok(Err(e)) => {
                tracing::warn!(session_id = %session.id, backend = self.backend(), error = %e, "memory recall failed; answering without memories");
                Vec::new()
            }
            Err(_) => {
                tracing::warn!(session_id = %session.id, backend = self.backend(), timeout_ms = RECALL_TIMEOUT.as_millis() as u64, "memory recall timed out; answering without memories");
                Vec::new()
            }
        }
    }

    /// Searches one session's memories.
    pub async fn search_session(
        &self,
        org: &OrgId,
        session: SessionId,
        query: &str,
        options: SearchOptions,
    ) -> Result<Vec<MemoryHit>, MemoryError> {
        let container = session_container(org, session)?;
        self.inner.store.search(&container, query, options).await
    }

    /// One session's newest memories, newest first.
    pub async fn list_session(
        &self,
        org: &OrgId,
        session: SessionId,
        limit: usize,
    ) -> Result<Vec<MemoryHit>, MemoryError> {
        let container = session_container(org, session)?;
        self.inner.store.list(&container, limit).await
    }

    /// Writes the memories of the answers at `paths`, read from the session's current `context` (always the
    /// latest value, whatever order jobs run in): a present answer is added under its key (replacing the old
    /// memory), an answer that is gone is forgotten. Idempotent.
    pub async fn write_answers(&self, session: &Session, paths: &[String]) -> Result<usize, MemoryError> {
        let container = session_container(&session.org_id, session.id)?;
        let org = self.inner.orgs.get(session.org_id.as_str());
        let mut written = 0;
        for path in paths {
            let key = recall::context_key(path);
            match recall::answer_memory(org, &session.context, path) {
                Some(content) => {
                    let memory = NewMemory {
                        content,
                        source: "context".to_owned(),
                        key: Some(key),
                        date: Some(session.updated_at),
                        metadata: json!({"sessionId": session.id.to_string(), "answer": path}),
                        group: None,
                        position: None,
                    };
                    self.inner.store.add(&container, memory).await?;
                    written += 1;
                }
                None => self.inner.store.forget_key(&container, &key).await?,
            }
        }
        Ok(written)
    }

    /// Writes the memory of one finished chat turn (user message and the answer), keyed by the answer's id so a
    /// retried job replaces rather than duplicates it. `position` orders the session's turns.
    #[allow(clippy::too_many_arguments)]
    pub async fn write_turn(
        &self,
        session: &Session,
        answer_id: &str,
        user: &str,
        answer: &str,
        assistant_name: &str,
        at: OffsetDateTime,
        position: i64,
    ) -> Result<(), MemoryError> {
        let container = session_container(&session.org_id, session.id)?;
        let memory = NewMemory {
            content: recall::turn_memory(user, answer, assistant_name),
            source: "chat".to_owned(),
            key: Some(format!("turn:{answer_id}")),
            date: Some(at),
            metadata: json!({"sessionId": session.id.to_string(), "messageId": answer_id}),
            group: Some(format!("chat:{}", session.id)),
            position: Some(position),
        };
        self.inner.store.add(&container, memory).await?;
        Ok(())
    }

    /// `memory_search` and `knowledge_search`, for agents that list them.
    pub fn tools(&self) -> Vec<Tool> {
        vec![self.memory_search_tool(), self.knowledge_search_tool()]
    }

    fn memory_search_tool(&self) -> Tool {
        let service = self.clone();
        Tool::new(
            "memory_search",
            "Search what you remember about this person: their onboarding answers and earlier conversations. \
             Returns the most relevant memories with their dates. Use it when you need a detail they told you \
             before that is not in the conversation.",
            search_schema("What to look for, in a few words (e.g. \"day rate\", \"booking process\")."),
            move |input, ctx| {
                let service = service.clone();
                async move {
                    let (query, limit) = parse_search_input(&input)?;
                    let options = SearchOptions { limit, token_budget: Some(service.inner.token_budget) };
                    let hits = service
                        .search_session(&ctx.org_id, ctx.session_id, &query, options)
                        .await
                        .map_err(|e| format!("memory search is unavailable right now ({e}); answer without it"))?;
                    Ok(json!({
                        "memories": hits.iter().map(|h| json!({
                            "content": h.content, "date": day(h.created_at), "source": h.source,
                        })).collect::<Vec<_>>()
                    }))
                }
            },
        )
    }

    fn knowledge_search_tool(&self) -> Tool {
        let service = self.clone();
        Tool::new(
            "knowledge_search",
            "Search this organisation's knowledge pages (its own written advice and policies). Returns the most \
             relevant passages with the page and section they come from. Use it before giving advice the \
             organisation has written about, and ground your answer in what it returns.",
            search_schema("What to look for, in a few words (e.g. \"deposits\", \"raising prices\")."),
            move |input, ctx| {
                let service = service.clone();
                async move {
                    let (query, limit) = parse_search_input(&input)?;
                    let hits = service.inner.knowledge.search(
                        ctx.org_id.as_str(),
                        &query,
                        limit,
                        Some(service.inner.token_budget),
                    );
                    Ok(json!({
                        "passages": hits.iter().map(|h| json!({
                            "page": h.file, "section": h.heading, "text": h.text,
                        })).collect::<Vec<_>>()
                    }))
                }
            },
        )
    }
}

fn search_schema(query_description: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": query_description},
            "limit": {"type": "integer", "minimum": 1, "maximum": TOOL_MAX_LIMIT, "description": "How many results (default 5)."}
        },
        "required": ["query"],
        "additionalProperties": false
    })
}

fn parse_search_input(input: &Value) -> Result<(String, usize), String> {
    let query = input
        .get("query")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or("`query` is required: a non-empty string saying what to look for")?;
    let limit = match input.get("limit") {
        None | Some(Value::Null) => TOOL_DEFAULT_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=TOOL_MAX_LIMIT as u64).contains(&n) => usize::try_from(n).unwrap_or(TOOL_DEFAULT_LIMIT),
            _ => return Err(format!("`limit` must be an integer from 1 to {TOOL_MAX_LIMIT}")),
        },
    };
    Ok((query.to_owned(), limit))
}

/// `2026-11-29`.
fn day(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).map(|s| s.chars().take(10).collect()).unwrap_or_default()
}

impl From<MemoryError> for MentorError {
    fn from(e: MemoryError) -> Self {
        match e {
            MemoryError::Invalid(m) => MentorError::invalid("memory", m),
            MemoryError::NotFound(m) => MentorError::NotFound(m),
            MemoryError::Unsupported { backend, operation } => MentorError::invalid(
                "q",
                format!("the memory backend ({backend}) cannot {operation}; pass q to search the memories instead"),
            ),
            other => MentorError::Memory(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_input_is_checked_for_the_model() {
        assert_eq!(parse_search_input(&json!({"query": " deposits "})), Ok(("deposits".to_owned(), 5)));
        assert_eq!(parse_search_input(&json!({"query": "x", "limit": 3})), Ok(("x".to_owned(), 3)));
        assert!(parse_search_input(&json!({"query": ""})).is_err());
        assert!(parse_search_input(&json!({"limit": 3})).is_err());
        assert!(parse_search_input(&json!({"query": "x", "limit": 0})).unwrap_err().contains("limit"));
        assert!(parse_search_input(&json!({"query": "x", "limit": 500})).is_err());
    }

    #[test]
    fn days_are_iso_dates() {
        assert_eq!(day(time::macros::datetime!(2026-11-29 23:59:59 UTC)), "2026-11-29");
    }
}
