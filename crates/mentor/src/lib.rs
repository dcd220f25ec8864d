//! Mentor's domain: sessions that collect what a person shares. Request bodies arrive here already shaped
//! (but not validated); everything is parsed into domain values before it touches the store.
//! Nothing here knows HTTP, SQL or token formats: a verified Clerk user id arrives as a plain string.

mod contact;
mod context;
mod error;
mod sessions;

pub use contact::{parse_email, parse_name, parse_phone};
pub use context::{MAX_CONTEXT_BYTES, merge_context};
pub use error::MentorError;
pub use sessions::{CreateOutcome, CreateSession, FieldUpdate, SessionPatch, Sessions, UpdateOutcome};
