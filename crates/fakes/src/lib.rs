//! Local stand-ins for the network services the project talks to, for tests only; must not depend on any mentorfy crate
//! and must never be reachable from production code paths.

pub mod clerk;
