//! The gateway's settings: one [`ProviderSettings`] per configured provider and the shared timeouts and retry
//! policy ([`GatewaySettings`]). Plain values, filled by the caller's configuration layer; this module reads no
//! environment and never prints a key (`Debug` redacts it).

use std::fmt;
use std::time::Duration;

use crate::types::ProviderKind;

/// How the Anthropic key is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AnthropicAuth {
    /// `x-api-key: <key>` (API version `2023-06-01` clients).
    #[default]
    XApiKey,
    /// `Authorization: Bearer <key>` (newer SDKs).
    Bearer,
}

/// One provider endpoint.
#[derive(Clone, PartialEq)]
pub struct ProviderSettings {
    /// The wire protocol; must match the [`GatewaySettings`] slot the settings are put in.
    pub kind: ProviderKind,
    /// The name recorded in telemetry (`gen_ai.provider.name`): `anthropic`, `openai`, `ollama`…
    pub name: String,
    /// Anthropic: `https://api.anthropic.com` (`/v1/messages` is appended). OpenAI: `https://api.openai.com/v1`
    /// (`/chat/completions` is appended). A trailing slash is tolerated.
    pub base_url: String,
    /// `None`: no authentication header at all (local OpenAI-compatible servers).
    pub api_key: Option<String>,
    /// Anthropic only: the `anthropic-version` header.
    pub anthropic_version: String,
    /// Anthropic only: how the key is sent.
    pub anthropic_auth: AnthropicAuth,
    /// OpenAI only: send `stream_options: {"include_usage": true}` (some compatible servers reject it).
    pub include_usage: bool,
}

/// The Anthropic API version sent by default.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";
/// The Anthropic API base URL.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// The OpenAI API base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

impl ProviderSettings {
    /// The real Anthropic API with this key, `x-api-key` auth and version `2023-06-01`.
    pub fn anthropic(api_key: impl Into<String>) -> Self {
        ProviderSettings {
            kind: ProviderKind::Anthropic,
            name: "anthropic".to_owned(),
            base_url: ANTHROPIC_BASE_URL.to_owned(),
            api_key: Some(api_key.into()),
            anthropic_version: DEFAULT_ANTHROPIC_VERSION.to_owned(),
            anthropic_auth: AnthropicAuth::XApiKey,
            include_usage: false,
        }
    }

    /// The real OpenAI API with this key (and `include_usage` on, which it supports).
    pub fn openai(api_key: impl Into<String>) -> Self {
        ProviderSettings {
            kind: ProviderKind::OpenAi,
            name: "openai".to_owned(),
            base_url: OPENAI_BASE_URL.to_owned(),
            api_key: Some(api_key.into()),
            anthropic_version: DEFAULT_ANTHROPIC_VERSION.to_owned(),
            anthropic_auth: AnthropicAuth::XApiKey,
            include_usage: true,
        }
    }

    /// Replaces the base URL (a local fake, a proxy, an OpenAI-compatible server).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Replaces the telemetry name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("anthropic_version", &self.anthropic_version)
            .field("anthropic_auth", &self.anthropic_auth)
            .field("include_usage", &self.include_usage)
            .finish()
    }
}

/// Providers plus the timeouts and retry policy shared by every call.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewaySettings {
    pub anthropic: Option<ProviderSettings>,
    pub openai: Option<ProviderSettings>,
    /// TCP (and TLS) connection establishment.
    pub connect_timeout: Duration,
    /// Streaming: from sending a request to its first content event (per attempt; a stall is retried).
    pub first_token_timeout: Duration,
    /// The whole call, retries and streaming included.
    pub total_timeout: Duration,
    /// Retries after the first attempt (so at most `1 + max_retries` requests).
    pub max_retries: u32,
    /// Backoff before retry `n` (from 0): `min(base × 2^n, max) × random[0.75, 1]`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            anthropic: None,
            openai: None,
            connect_timeout: Duration::from_secs(10),
            first_token_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            max_retries: 2,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let settings = ProviderSettings::anthropic("sk-ant-secret");
        let text = format!("{settings:?}");
        assert!(!text.contains("sk-ant-secret"));
        assert!(text.contains("[redacted]"));
    }
}
