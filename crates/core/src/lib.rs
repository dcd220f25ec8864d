//! Shared vocabulary of Mentorfy: ids, configuration, organisations and the session domain types.
//! It must not know HTTP, SQL or any external service: every other crate may depend on it.

pub mod config;
pub mod ids;
pub mod org;
pub mod secret;
pub mod session;

pub use config::{
    AdminConfig, AlertConfig, Config, ConfigError, JobsConfig, LlmConfig, MemoryConfig, SenseiConfig, TraceExport,
};
pub use ids::{JobId, OrgId, SessionId};
pub use org::{Org, OrgRegistry};
pub use secret::Secret;
pub use session::{Session, SessionStatus};
