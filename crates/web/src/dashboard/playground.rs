//! Playground: chat with one of the bundled agents from the dashboard. The page is a form; `playground.js` creates
//! a Mentor session (`POST /api/session`, in the agent's org), posts each message to `/api/chat` and shows the
//! streamed answer as it arrives. The chats are ordinary Mentor conversations, so Sensei analyses them too.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use mentorfy_mentor::AgentKind;

use super::assets;
use super::page::{Layout, PageError, render};
use super::session::Admin;
use crate::state::AppState;

const PATH: &str = "/dashboard/playground";

/// A chat agent in the picker.
pub struct AgentOption {
    pub id: String,
    pub org: String,
    pub label: String,
    pub description: String,
    pub available: bool,
}

#[derive(Template)]
#[template(path = "dashboard/playground.html")]
struct PlaygroundPage {
    layout: Layout,
    script: String,
    agents: Vec<AgentOption>,
    /// Whether no agent's provider is configured (every send would answer 503).
    none_available: bool,
}

/// `GET /dashboard/playground`: the chat agents this server loaded (as `GET /api/agents` lists them).
pub async fn page(State(state): State<AppState>, admin: Admin) -> Result<Response, PageError> {
    let mut agents: Vec<AgentOption> = state
        .chat()
        .agents()
        .list()
        .filter(|a| matches!(a.kind, AgentKind::Chat))
        .map(|a| {
            let available = state.gateway().provider(a.provider).is_some();
            AgentOption {
                id: a.id.clone(),
                org: a.org.to_string(),
                label: if available {
                    format!("{} ({})", a.name, a.id)
                } else {
                    format!("{} ({}) — provider not configured", a.name, a.id)
                },
                description: a.description.clone(),
                available,
            }
        })
        .collect();
    // Agents that can answer first.
    agents.sort_by_key(|a| !a.available);
    render(&PlaygroundPage {
        layout: Layout::new(&admin, PATH, "Playground"),
        script: assets::url("playground.js"),
        none_available: !agents.is_empty() && agents.iter().all(|a| !a.available),
        agents,
    })
}
