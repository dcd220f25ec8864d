//! Local stand-ins for the network services the project talks to, for tests only; must not depend on any mentorfy crate
//! and must never be reachable from production code paths. Each speaks the real wire format from `shared/specs/`
//! and records what it received, so tests assert what we sent as well as what we did with the answer.

pub mod anthropic;
pub mod clerk;
pub mod openai;
pub mod otlp;
pub mod slack;
pub mod sse;
pub mod supabase;
pub mod supermemory;
