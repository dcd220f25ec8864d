//! Outbound webhooks for alerts, per `specs/rate-limits-and-webhooks.md` §3: URL validation (Slack incoming
//! webhooks by default; generic URLs only when enabled, with the resolve → check every address → connect only to
//! a checked address flow), and one POST with no redirects, no proxies, timeouts and a response cap.
//! A webhook URL is a bearer credential: nothing here logs it, and no error or `Debug`/`Display` output holds it
//! (or the target's response body).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The one host Slack incoming webhooks live on.
pub const SLACK_HOST: &str = "hooks.slack.com";
/// TCP connect timeout (spec: ≤ 5 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request timeout (spec: ≤ 10 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// DNS timeout of the generic-URL check.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this much of a response is read (and then thrown away).
pub const RESPONSE_CAP: usize = 64 * 1024;
/// A `Retry-After` longer than this is capped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// What targets are allowed. Production uses [`WebhookPolicy::default`] (Slack only) or
/// [`WebhookPolicy::generic`]; `allow_loopback_for_tests` exists only so integration tests can point alerts at a
/// local fake server and is never set by production code (no configuration variable reaches it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// Accept https URLs on other hosts than hooks.slack.com, under the SSRF rules of §3.2.
    pub allow_generic: bool,
    /// TEST ONLY: also accept `http://127.0.0.1:PORT/...` (or `[::1]`), any port, posted to directly.
    pub allow_loopback_for_tests: bool,
}

impl WebhookPolicy {
    /// Slack incoming webhooks and, under the SSRF rules, any other https URL.
    pub fn generic() -> Self {
        Self { allow_generic: true, allow_loopback_for_tests: false }
    }

    /// TEST ONLY: Slack URLs plus loopback targets (local fakes). Never use outside tests.
    pub fn loopback_for_tests() -> Self {
        Self { allow_generic: false, allow_loopback_for_tests: true }
    }
}

/// Why a URL was refused. Messages are safe to show: they never contain the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("not a valid URL")]
    Unparseable,
    #[error("the URL must use https")]
    NotHttps,
    #[error("the URL must not contain a user name or password")]
    UserInfo,
    #[error("the URL must not contain a fragment")]
    Fragment,
    #[error("the URL's port is not allowed")]
    Port,
    #[error("only Slack incoming webhooks (https://hooks.slack.com/services/...) are supported")]
    NotSlack,
    #[error("a Slack incoming webhook's path starts with /services/")]
    NotSlackPath,
    #[error("the host must be a public domain name")]
    LocalHost,
    #[error("the host's address is private, loopback, link-local or otherwise not public")]
    BlockedAddress,
    #[error("the host does not resolve")]
    Unresolvable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `https://hooks.slack.com/services/...`: a fixed public host.
    Slack,
    /// Another https host: resolved, checked and pinned on every send.
    Generic,
    /// A loopback address allowed by [`WebhookPolicy::allow_loopback_for_tests`].
    TestLoopback,
}

/// A validated webhook URL. `Debug` and `Display` show a redacted form
/// (`https://hooks.slack.com/services/T…/B…/****`); [`WebhookUrl::expose`] is the only way to the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: Url,
    target: Target,
}

impl WebhookUrl {
    /// The full URL, secret included. For the HTTP request and for storing; never for logs or responses.
    pub fn expose(&self) -> &str {
        self.url.as_str()
    }

    /// True for `https://hooks.slack.com/services/...`.
    pub fn is_slack(&self) -> bool {
        self.target == Target::Slack
    }

    /// The redacted form: scheme and host, the first letter of the first two path segments, the rest masked.
    pub fn redacted(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let mut segments = self.url.path_segments().map(|s| s.collect::<Vec<_>>()).unwrap_or_default();
        segments.retain(|s| !s.is_empty());
        let path = match (self.target, segments.as_slice()) {
            (Target::Slack, [services, team, bot, ..]) => {
                format!("/{services}/{}…/{}…/****", first_char(team), first_char(bot))
            }
            _ => "/****".to_owned(),
        };
        format!("{}://{host}{port}{path}", self.url.scheme())
    }
}

fn first_char(s: &str) -> String {
    s.chars().next().map(String::from).unwrap_or_default()
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({})", self.redacted())
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Validates a webhook URL under the production policy: Slack only, or with `allow_generic` any https URL under
/// the SSRF rules (its addresses are checked again, and pinned, on every send).
pub fn validate_webhook_url(raw: &str, allow_generic: bool) -> Result<WebhookUrl, WebhookError> {
    validate_with_policy(raw, WebhookPolicy { allow_generic, allow_loopback_for_tests: false })
}

/// [`validate_webhook_url`] with an explicit policy.
pub fn validate_with_policy(raw: &str, policy: WebhookPolicy) -> Result<WebhookUrl, WebhookError> {
    // WHATWG parsing: numeric host forms (2130706433, 0x7f.1) become IPv4 addresses, hosts are lower-cased.
    let url = Url::parse(raw.trim()).map_err(|_| WebhookError::Unparseable)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(WebhookError::UserInfo);
    }
    if url.fragment().is_some() {
        return Err(WebhookError::Fragment);
    }
    let host = host_of(&url).ok_or(WebhookError::Unparseable)?;

    if policy.allow_loopback_for_tests
        && matches!(host, Host::Ip(ip) if ip.is_loopback())
        && matches!(url.scheme(), "http" | "https")
    {
        return Ok(WebhookUrl { url, target: Target::TestLoopback });
    }

    if url.scheme() != "https" {
        return Err(WebhookError::NotHttps);
    }
    // `port()` is `None` for the scheme's default (443).
    if url.port().is_some_and(|p| p != 443) {
        return Err(WebhookError::Port);
    }
    match host {
        Host::Domain(d) if d == SLACK_HOST => {
            if !url.path().starts_with("/services/") {
                return Err(WebhookError::NotSlackPath);
            }
            Ok(WebhookUrl { url, target: Target::Slack })
        }
        _ if !policy.allow_generic => Err(WebhookError::NotSlack),
        Host::Ip(ip) => check_ip_literal(ip).map(|()| WebhookUrl { url, target: Target::Generic }),
        Host::Domain(d) => {
            let d = d.trim_end_matches('.');
            if d == "localhost" || d.ends_with(".localhost") || !d.contains('.') {
                return Err(WebhookError::LocalHost);
            }
            Ok(WebhookUrl { url, target: Target::Generic })
        }
    }
}

/// A parsed URL's host. The WHATWG parser has already turned every numeric IPv4 form into dotted decimal and
/// bracketed IPv6 literals, so a host that parses as an address is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host<'a> {
    Ip(IpAddr),
    Domain(&'a str),
}

fn host_of(url: &Url) -> Option<Host<'_>> {
    let h = url.host_str().filter(|h| !h.is_empty())?;
    if let Some(v6) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().ok().map(|ip| Host::Ip(IpAddr::V6(ip)));
    }
    Some(match h.parse::<Ipv4Addr>() {
        Ok(v4) => Host::Ip(IpAddr::V4(v4)),
        Err(_) => Host::Domain(h),
    })
}

/// reqwest skips DNS for IP-literal hosts, so literals are checked here, once, at validation.
fn check_ip_literal(ip: IpAddr) -> Result<(), WebhookError> {
    if is_blocked_ip(ip) { Err(WebhookError::BlockedAddress) } else { Ok(()) }
}

/// True when `ip` is in a range webhooks must never reach (spec §3.2; `IpAddr::is_global` is unstable).
///
/// | IPv4 | Why |
/// |---|---|
/// | `0.0.0.0/8` | "this network" |
/// | `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` | private (RFC 1918) |
/// | `100.64.0.0/10` | CGNAT shared address space |
/// | `127.0.0.0/8` | loopback |
/// | `169.254.0.0/16` | link-local, cloud metadata `169.254.169.254` |
/// | `192.0.0.0/24` | IETF protocol assignments |
/// | `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24` | documentation |
/// | `198.18.0.0/15` | benchmarking |
/// | `224.0.0.0/4`, `240.0.0.0/4`, `255.255.255.255/32` | multicast, reserved, broadcast |
///
/// | IPv6 | Why |
/// |---|---|
/// | `::/128`, `::1/128` (and all of `::/96`, IPv4-compatible) | unspecified, loopback |
/// | `::ffff:0:0/96` | IPv4-mapped: the whole range is blocked |
/// | `64:ff9b::/96`, `64:ff9b:1::/48` | NAT64 (embeds IPv4) |
/// | `2001::/32` | Teredo (embeds IPv4) |
/// | `2002::/16` | 6to4 (embeds IPv4) |
/// | `fc00::/7` | unique local (AWS metadata `fd00:ec2::254`) |
/// | `fe80::/10`, `fec0::/10` | link-local, deprecated site-local |
/// | `ff00::/8` | multicast |
/// | `2001:db8::/32`, `100::/64` | documentation, discard-only |
pub fn is_blocked_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_blocked_v4(v4),
        IpAddr::V6(v6) => is_blocked_v6(v6),
    }
}

const BLOCKED_V4: [(Ipv4Addr, u8); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(192, 0, 0, 0), 24),
    (Ipv4Addr::new(192, 0, 2, 0), 24),
    (Ipv4Addr::new(198, 51, 100, 0), 24),
    (Ipv4Addr::new(203, 0, 113, 0), 24),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(224, 0, 0, 0), 4),
    (Ipv4Addr::new(240, 0, 0, 0), 4),
    (Ipv4Addr::new(255, 255, 255, 255), 32),
];

const BLOCKED_V6: [(Ipv6Addr, u8); 13] = [
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96),
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1), 128),
];

fn is_blocked_v4(ip: Ipv4Addr) -> bool {
    let x = u32::from(ip);
    BLOCKED_V4.iter().any(|(net, len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
        x & mask == u32::from(*net) & mask
    })
}

fn is_blocked_v6(ip: Ipv6Addr) -> bool {
    let x = u128::from(ip);
    BLOCKED_V6.iter().any(|(net, len)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
        x & mask == u128::from(*net) & mask
    })
}

/// Why a delivery failed. `Display` gives a status class only: never the URL, never the response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// 429: try again after `retry_after` (when the target said).
    #[error("http 429 (rate limited)")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx.
    #[error("http {status} (server error)")]
    Server { status: u16 },
    /// Timeout, refused connection, DNS failure, reset.
    #[error("network error ({0})")]
    Network(&'static str),
    /// 3xx (redirects are not followed) or a 4xx other than 429: the webhook is wrong or revoked.
    #[error("http {status} (rejected)")]
    Rejected { status: u16 },
    /// The URL failed validation, or (generic URLs) resolved to a blocked address at send time.
    #[error("refused: {0}")]
    Refused(WebhookError),
    /// The HTTP client could not be built (TLS setup).
    #[error("http client unavailable")]
    Client,
}

impl DeliveryError {
    /// True for 429, 5xx and network errors: a later attempt may pass.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Server { .. } | Self::Network(_) | Self::Client)
    }

    /// The target's `Retry-After`, when it gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// Posts JSON to validated webhook URLs. Cheap to clone.
#[derive(Clone)]
pub struct WebhookSender {
    /// For Slack (a fixed public host) and test loopback literals.
    fixed: reqwest::Client,
}

impl fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSender").finish_non_exhaustive()
    }
}

fn builder() -> reqwest::ClientBuilder {
    // reqwest is built with `rustls-no-provider`: make sure a crypto provider is installed.
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("mentorfy-alerts/", env!("CARGO_PKG_VERSION")))
}

impl WebhookSender {
    pub fn new() -> Result<Self, DeliveryError> {
        let fixed = builder().build().map_err(|_| DeliveryError::Client)?;
        Ok(Self { fixed })
    }

    /// POSTs `body` as JSON to `url`. Success is any 2xx. Generic URLs are resolved here (all A and AAAA
    /// records, with a timeout), refused if **any** address is blocked, and the connection is pinned to the
    /// checked addresses (the hostname is kept for SNI, certificate checks and `Host`).
    pub async fn post_json(&self, url: &WebhookUrl, body: &serde_json::Value) -> Result<(), DeliveryError> {
        let client = match url.target {
            Target::Slack | Target::TestLoopback => self.fixed.clone(),
            Target::Generic => match host_of(&url.url) {
                Some(Host::Domain(host)) => {
                    let port = url.url.port_or_known_default().unwrap_or(443);
                    let addrs = resolve_checked(host, port).await?;
                    builder()
                        .dns_resolver(Arc::new(PinnedResolver { host: host.to_ascii_lowercase(), addrs }))
                        .build()
                        .map_err(|_| DeliveryError::Client)?
                }
                // IP literals were checked at validation; reqwest does not resolve them.
                _ => self.fixed.clone(),
            },
        };
        let response = client.post(url.url.clone()).json(body).send().await.map_err(network)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        drain_capped(response).await;
        match status.as_u16() {
            200..=299 => Ok(()),
            429 => Err(DeliveryError::RateLimited { retry_after }),
            s @ 500..=599 => Err(DeliveryError::Server { status: s }),
            s => Err(DeliveryError::Rejected { status: s }),
        }
    }
}

/// A reqwest error as a status class; its own `Display` includes the URL, so it is never formatted.
fn network(e: reqwest::Error) -> DeliveryError {
    DeliveryError::Network(if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    })
}

/// Reads at most [`RESPONSE_CAP`] bytes of the response and discards them (the body is never shown).
async fn drain_capped(mut response: reqwest::Response) {
    let mut read = 0usize;
    while read < RESPONSE_CAP {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
}

/// Resolves `host` to all its addresses with a timeout; refuses when there are none or **any** is blocked.
async fn resolve_checked(host: &str, port: u16) -> Result<Vec<SocketAddr>, DeliveryError> {
    let lookup = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port))).await;
    let addrs: Vec<SocketAddr> = match lookup {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(_)) => return Err(DeliveryError::Refused(WebhookError::Unresolvable)),
        Err(_) => return Err(DeliveryError::Network("dns timeout")),
    };
    if addrs.is_empty() {
        return Err(DeliveryError::Refused(WebhookError::Unresolvable));
    }
    if addrs.iter().any(|a| is_blocked_ip(a.ip())) {
        return Err(DeliveryError::Refused(WebhookError::BlockedAddress));
    }
    Ok(addrs)
}

/// Answers only for the checked host, with only the checked addresses: reqwest never resolves a second time.
struct PinnedResolver {
    host: String,
    addrs: Vec<SocketAddr>,
}

impl Resolve for PinnedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let answer: Result<Addrs, Box<dyn std::error::Error + Send + Sync>> =
            if name.as_str().eq_ignore_ascii_case(&self.host) {
                Ok(Box::new(self.addrs.clone().into_iter()))
            } else {
                Err("name is not the checked webhook host".into())
            };
        Box::pin(std::future::ready(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_ranges_cover_the_table() {
        for ip in ["127.0.0.1", "10.1.2.3", "172.31.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.1.2.3"] {
            assert!(is_blocked_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in
            ["::1", "::", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "fd00:ec2::254", "fe80::1", "2002::1", "64:ff9b::1"]
        {
            assert!(is_blocked_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert!(!is_blocked_ip(ip.parse().unwrap()), "{ip}");
        }
    }
}
