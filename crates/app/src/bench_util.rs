//! Helpers every `mentorfy bench …` command shares: latency histograms, the machine description and load average
//! written next to each figure.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// A duration in whole microseconds (at least 1, so a histogram accepts it).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// A latency histogram in microseconds, from 1 µs to 10 minutes, three significant digits.
pub fn new_hist() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// Microseconds as milliseconds rounded to two decimals.
pub fn ms(micros: u64) -> f64 {
    (micros as f64 / 10.0).round() / 100.0
}

/// CPU model and count from /proc/cpuinfo (Linux), cores usable by this process.
pub fn machine() -> Value {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
    json!({
        "cpu_model": model,
        "cpus": info.lines().filter(|l| l.starts_with("processor")).count(),
        "available_parallelism": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })
}

/// The 1-minute load average (/proc/loadavg), to tell whether something else was using the CPU.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_rounds_microseconds_to_hundredths_of_a_millisecond() {
        assert!((ms(1_234_567) - 1234.57).abs() < 1e-9);
        assert!((ms(4) - 0.0).abs() < 1e-9);
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::from_millis(3)), 3_000);
    }

    #[test]
    fn histogram_holds_ten_minutes() {
        let mut h = new_hist().unwrap();
        h.record(micros(Duration::from_secs(599))).unwrap();
        assert!(h.max() >= 598_000_000);
    }
}
