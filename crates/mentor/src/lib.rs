//! Mentor's domain: sessions that collect what a person shares. Request bodies arrive here already shaped
//! (but not validated); everything is parsed into domain values before it touches the store.
//! Nothing here knows HTTP, SQL or token formats: a verified Clerk user id arrives as a plain string.

mod agents;
mod chat;
mod contact;
mod context;
mod error;
pub mod jobs;
mod memory;
mod recall;
mod sessions;
mod template;
mod tools;
mod trace;

pub use agents::{Agent, AgentKind, Agents};
pub use chat::{
    ChatEvent, ChatInput, ChatService, ChatTurn, Generation, MAX_MESSAGE_BYTES, MENTOR_ENVIRONMENT, MENTOR_SOURCE,
};
pub use contact::{parse_email, parse_name, parse_phone};
pub use context::{MAX_CONTEXT_BYTES, merge_context};
pub use error::MentorError;
pub use memory::{MemoryService, session_container};
pub use sessions::{CreateOutcome, CreateSession, FieldUpdate, SessionPatch, Sessions, UpdateOutcome};
pub use template::{PromptVars, Template, TemplateError};
pub use tools::{Tool, ToolContext, ToolFuture, ToolRegistry};
pub use trace::{CallEnd, CallLog, Recorded, TraceScope, Tracer};
