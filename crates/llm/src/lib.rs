//! The LLM gateway: Anthropic Messages and OpenAI-compatible chat completions behind one provider-neutral
//! API, streaming and not, with tools, retries before the first byte, timeouts, usage and cost.
//! It knows HTTP only as a client; nothing here knows our server, our store or our agents.

mod types;

pub use types::*;
