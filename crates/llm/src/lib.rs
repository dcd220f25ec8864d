//! The LLM gateway: Anthropic Messages and OpenAI-compatible chat completions behind one provider-neutral
//! API, streaming and not, with tools, retries before the first byte, timeouts, usage and cost.
//! It knows HTTP only as a client; nothing here knows our server, our store or our agents.
//!
//! Modules:
//! - `types`: the provider-neutral vocabulary ([`ChatRequest`], [`StreamEvent`], [`Completion`], [`Usage`]).
//! - `settings`: [`GatewaySettings`] and one [`ProviderSettings`] per provider (keys redacted in `Debug`).
//! - `gateway`: [`Gateway`], which sends, retries (SDK policy: 408/409/429/5xx/connection errors, `x-should-retry`,
//!   `retry-after`, backoff with jitter; only before the first content event) and enforces the connect,
//!   first-token and total deadlines.
//! - `stream`: [`LlmStream`], the events of a streamed call after its first one; dropping it closes the connection.
//! - `anthropic`, `openai`: each wire format's request body, stream decoder and non-streamed response parser.
//! - `retry`: which failures are retried and how long to wait.
//! - `error`: [`LlmError`] and [`TimeoutPhase`]; `public_message` is the only text meant for end users.
//! - [`price`]: [`PriceTable`] from the embedded, dated `prices.toml`, optionally overlaid by a file, and the cost
//!   of a call.
//!
//! reqwest is built without a TLS crypto provider: [`Gateway::new`] installs rustls' `ring` provider as the process
//! default when none is installed yet.

mod anthropic;
mod error;
mod gateway;
mod openai;
pub mod price;
mod retry;
mod settings;
mod stream;
mod types;

pub use error::{LlmError, TimeoutPhase};
pub use gateway::Gateway;
pub use price::{ModelPrice, PriceTable};
pub use settings::{
    ANTHROPIC_BASE_URL, AnthropicAuth, DEFAULT_ANTHROPIC_VERSION, GatewaySettings, OPENAI_BASE_URL, ProviderSettings,
};
pub use stream::LlmStream;
pub use types::*;
