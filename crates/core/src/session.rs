//! The Mentor session as the domain sees it: one row of `sessions`, already parsed.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::{OrgId, SessionId};

/// Where a session is in its life. `Abandoned` is only ever set by the idle sweep; any later
/// activity brings the session back to `InProgress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    InProgress,
    Completed,
    Abandoned,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Abandoned => "abandoned",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "in_progress" => Some(Self::InProgress),
            "completed" => Some(Self::Completed),
            "abandoned" => Some(Self::Abandoned),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub org_id: OrgId,
    /// Memory container for this session, `{orgId}-{sessionId}`.
    pub supermemory_container: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub clerk_user_id: Option<String>,
    /// Always a JSON object.
    pub context: serde_json::Value,
    pub status: SessionStatus,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Session {
    pub fn container_tag(org: &OrgId, id: SessionId) -> String {
        format!("{org}-{id}")
    }
}
