//! Conversation analysis (issue 6): per-message sentiment, failure detectors and the health score, as pure
//! functions over a [`Transcript`]. The `sensei.process_conversation` job reads a conversation, runs [`analyse`]
//! and stores the result; `mentorfy bench health` runs the same code on labelled corpora. No I/O here.

pub mod detect;
pub mod health;
pub mod sentiment;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::ingest::Role;

/// One message as the analysers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub role: Role,
    pub content: String,
    /// `complete`, `aborted`, `error` or `superseded` (superseded messages are left out of analysis by callers).
    pub status: String,
    pub created_at: OffsetDateTime,
    pub latency_ms: Option<i64>,
    /// The message's JSON metadata (tool errors, model, latency as sent by clients).
    pub metadata: Map<String, Value>,
}

/// A conversation's messages in time order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    pub turns: Vec<Turn>,
    /// True once the conversation has been idle past the idle timeout: abandonment and unresolved escalations
    /// are only judged on final transcripts.
    pub is_final: bool,
}

/// How bad a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One failure found by a detector, pointing at a turn when it can.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// e.g. `user_frustration`, `repeated_question`, `agent_refusal`, `repetition_loop`, `escalation_request`,
    /// `tool_error`, `slow_turn`, `empty_reply`, `abandonment`.
    pub kind: &'static str,
    /// A finer label within the kind (`correction`, `retry`, `frustration`, `challenge`, …), or empty.
    pub subtype: &'static str,
    pub severity: Severity,
    /// Index into [`Transcript::turns`].
    pub turn: Option<usize>,
    /// A short excerpt (≤ 200 characters) of what triggered it.
    pub evidence: String,
    pub detector: &'static str,
    pub detector_version: u32,
    /// 0..1: how sure the detector is.
    pub confidence: f64,
    /// Stable across re-runs of the same transcript: `detector:kind:turn` (plus subtype when needed).
    pub fingerprint: String,
}

/// One weighted component of the health score.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthComponent {
    pub name: &'static str,
    /// Weight in the final score.
    pub weight: f64,
    /// 0..1 (1 = healthy).
    pub value: f64,
    /// Why, for people (e.g. "2 of 5 user turns negative").
    pub evidence: String,
}

/// The health of a conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// 0..100.
    pub score: f64,
    pub components: Vec<HealthComponent>,
}

/// Everything the analysis produces for one transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Compound sentiment −1..1 per turn (same order as the transcript).
    pub sentiment: Vec<f64>,
    pub findings: Vec<Finding>,
    pub health: Health,
    /// Per-turn risk 0..1 that the turn is a failure (agent turns: a breakdown; user turns: dissatisfaction).
    pub turn_risk: Vec<f64>,
}

/// A transcript with what the analysers read of each turn, computed once: its sentiment and its text features
/// (tokens, content words, phrase hits). The detectors, the turn risk and the health score all read these
/// rather than each scoring and tokenising every turn again.
pub(crate) struct Prepared<'a> {
    pub transcript: &'a Transcript,
    /// Compound sentiment −1..1 per turn (a turn past the end counts as 0).
    pub sentiment: Vec<f64>,
    /// Text features per turn, same order.
    pub text: Vec<detect::TurnText>,
}

impl<'a> Prepared<'a> {
    /// Scores every turn's sentiment and computes its text features.
    pub(crate) fn new(transcript: &'a Transcript) -> Self {
        let sentiment = transcript.turns.iter().map(|turn| sentiment::compound(&turn.content)).collect();
        Self::with_sentiment(transcript, sentiment)
    }

    /// With sentiment given by the caller (tests, the detectors' public entry points).
    pub(crate) fn with_sentiment(transcript: &'a Transcript, sentiment: Vec<f64>) -> Self {
        Prepared { transcript, sentiment, text: detect::turn_texts(transcript) }
    }
}

/// Runs sentiment, the detectors and the health score, over features computed once per turn ([`Prepared`]).
pub fn analyse(t: &Transcript) -> Analysis {
    let p = Prepared::new(t);
    let findings = detect::detect_with(&p);
    let turn_risk = detect::turn_risk_with(&p, &findings);
    let health = health::score_with(&p, &findings, &turn_risk);
    Analysis { sentiment: p.sentiment, findings, health, turn_risk }
}
