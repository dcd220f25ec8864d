//! Per-key request rate limiting with GCRA (`shared/specs/rate-limits-and-webhooks.md` §1–2): one timestamp of
//! state per key, an exact `Retry-After`, and the IETF `RateLimit-Policy` / `RateLimit` headers. In process: with
//! several servers each enforces the limit on its own share of the traffic.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};

/// Above this many tracked keys, keys whose bucket is full again are dropped on the next check.
const PRUNE_AT: usize = 10_000;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests still allowed right now.
    pub remaining: u64,
    /// Seconds until the bucket is full again (admitted) or until the request would be admitted (refused),
    /// rounded up.
    pub reset_secs: u64,
}

/// A GCRA limiter: `rate` requests per `period`, bursts of up to `burst`.
#[derive(Debug)]
pub struct Gcra<K> {
    name: &'static str,
    /// Emission interval T = period / rate.
    interval: Duration,
    /// Burst tolerance τ = T × (burst − 1).
    tolerance: Duration,
    burst: u32,
    /// Theoretical arrival time per key.
    tat: Mutex<HashMap<K, Instant>>,
}

impl<K: Eq + Hash + Clone> Gcra<K> {
    pub fn new(name: &'static str, rate: u32, period: Duration, burst: u32) -> Self {
        let interval = period / rate.max(1);
        let burst = burst.max(1);
        Self { name, interval, tolerance: interval * (burst - 1), burst, tat: Mutex::new(HashMap::new()) }
    }

    /// Checks one request of `key` at `now`, recording it when admitted.
    pub fn check_at(&self, key: &K, now: Instant) -> Decision {
        let mut map = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > PRUNE_AT {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        // How far the key's theoretical arrival time runs ahead of now; GCRA admits while it is within τ.
        let ahead = tat.saturating_duration_since(now);
        if ahead > self.tolerance {
            return Decision { allowed: false, remaining: 0, reset_secs: ceil_secs(ahead - self.tolerance) };
        }
        map.insert(key.clone(), tat + self.interval);
        let remaining = ((self.tolerance - ahead).as_nanos() / self.interval.as_nanos().max(1)) as u64;
        Decision { allowed: true, remaining, reset_secs: ceil_secs(ahead + self.interval) }
    }

    pub fn check(&self, key: &K) -> Decision {
        self.check_at(key, Instant::now())
    }

    /// `RateLimit-Policy` and `RateLimit` headers for a decision.
    pub fn headers(&self, d: &Decision) -> Vec<(HeaderName, HeaderValue)> {
        let window = ceil_secs(self.interval * self.burst);
        let policy = format!("\"{}\";q={};w={}", self.name, self.burst, window);
        let state = format!("\"{}\";r={};t={}", self.name, d.remaining, d.reset_secs);
        let mut out = Vec::with_capacity(2);
        if let Ok(v) = HeaderValue::from_str(&policy) {
            out.push((HeaderName::from_static("ratelimit-policy"), v));
        }
        if let Ok(v) = HeaderValue::from_str(&state) {
            out.push((HeaderName::from_static("ratelimit"), v));
        }
        out
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_then_the_rate_applies_with_an_exact_retry_after() {
        // 2 per second, burst 3.
        let limiter = Gcra::new("ingest", 2, Duration::from_secs(1), 3);
        let t0 = Instant::now();
        let key = "k";
        let d: Vec<Decision> = (0..3).map(|_| limiter.check_at(&key, t0)).collect();
        assert!(d.iter().all(|d| d.allowed), "{d:?}");
        assert_eq!(d.iter().map(|d| d.remaining).collect::<Vec<_>>(), vec![2, 1, 0]);
        let refused = limiter.check_at(&key, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.reset_secs, 1, "one emission interval (0.5 s) rounds up to 1 s");
        // After one interval one more request fits, and only one.
        let later = t0 + Duration::from_millis(500);
        assert!(limiter.check_at(&key, later).allowed);
        assert!(!limiter.check_at(&key, later).allowed);
        // Another key has its own bucket.
        assert!(limiter.check_at(&"other", later).allowed);
        // A long idle period refills the burst, no more.
        let idle = t0 + Duration::from_secs(60);
        let d: Vec<bool> = (0..4).map(|_| limiter.check_at(&key, idle).allowed).collect();
        assert_eq!(d, vec![true, true, true, false]);
    }

    #[test]
    fn headers_follow_the_draft() {
        let limiter = Gcra::new("ingest", 100, Duration::from_secs(1), 500);
        let d = limiter.check(&1u8);
        let h = limiter.headers(&d);
        assert_eq!(h[0].1, "\"ingest\";q=500;w=5");
        assert_eq!(h[1].1, format!("\"ingest\";r={};t=1", d.remaining));
        assert_eq!(d.remaining, 499);
    }
}
