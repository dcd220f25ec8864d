//! The health score (issue 6): a weighted blend of components, each 0..1 with a short evidence string, scaled to
//! 0..100. Components and weights (sum 1):
//!
//! | component          | weight | what it measures                                                          |
//! |--------------------|--------|---------------------------------------------------------------------------|
//! | `user_sentiment`   | 0.25   | user turns' sentiment: mean, saturating positive/negative mass, the end    |
//! | `positive_outcomes`| 0.20   | thanks/praise from the user, completed-task confirmations from the agent   |
//! | `failure_burden`   | 0.10   | severity × confidence of all findings, saturating                          |
//! | `dissatisfaction`  | 0.25   | per-user-turn dissatisfaction risk ([`super::detect::turn_risk`]): mean and worst |
//! | `resolution`       | 0.10   | how it ended: thanks / positive close, open escalation, abandonment        |
//! | `agent_quality`    | 0.05   | refusals, inability, loops, empty replies, tool errors                     |
//! | `efficiency`       | 0.05   | repeated questions and retries                                             |
//!
//! Failures reach the score several ways (burden, the dissatisfaction risk they put on the next user turn, agent
//! quality, efficiency, resolution), so the burden weight itself is modest. Every failure signal only ever lowers a
//! component, so adding a finding never raises the score. An empty transcript scores 100 (nothing went wrong); a
//! 1–2 turn conversation is judged on what little it has. The weights were set by judgement and then checked
//! (coarsely, not fitted) against the USS satisfaction ratings with `examples/eval_health.rs`.

use super::detect;
use super::{Finding, Health, HealthComponent, Prepared, Severity, Transcript};
use crate::ingest::Role;

const W_SENTIMENT: f64 = 0.25;
const W_APPRECIATION: f64 = 0.20;
const W_BURDEN: f64 = 0.10;
const W_DISSATISFACTION: f64 = 0.25;
const W_RESOLUTION: f64 = 0.10;
const W_AGENT: f64 = 0.05;
const W_EFFICIENCY: f64 = 0.05;

fn severity_weight(s: Severity) -> f64 {
    match s {
        Severity::Low => 0.25,
        Severity::Medium => 0.6,
        Severity::High => 1.0,
        Severity::Critical => 1.5,
    }
}

/// The conversation's health, 0..100, with its breakdown.
pub fn score(t: &Transcript, sentiment: &[f64], findings: &[Finding]) -> Health {
    let p = Prepared::with_sentiment(t, sentiment.to_vec());
    let risk = detect::turn_risk_with(&p, findings);
    score_with(&p, findings, &risk)
}

/// [`score`] over a prepared transcript and its turn risk ([`detect::turn_risk`]).
pub(crate) fn score_with(p: &Prepared<'_>, findings: &[Finding], risk: &[f64]) -> Health {
    let (t, sentiment, tx) = (p.transcript, &p.sentiment[..], &p.text[..]);
    let users: Vec<usize> = (0..t.turns.len()).filter(|&i| t.turns[i].role == Role::User).collect();
    let s = |i: usize| sentiment.get(i).copied().unwrap_or(0.0).clamp(-1.0, 1.0);

    // Sentiment: positive user turns add up (saturating), negative ones weigh more, a negative ending most.
    let sentiment_c = if users.is_empty() {
        HealthComponent { name: "user_sentiment", weight: W_SENTIMENT, value: 1.0, evidence: "no user turns".into() }
    } else {
        let pos: f64 = users.iter().map(|&i| s(i).max(0.0)).sum();
        let neg: f64 = users.iter().map(|&i| (-s(i)).max(0.0)).sum();
        let last = users.last().map_or(0.0, |&i| s(i));
        let n_neg = users.iter().filter(|&&i| s(i) < -0.05).count();
        let n_pos = users.iter().filter(|&&i| s(i) > 0.05).count();
        let mean = users.iter().map(|&i| s(i)).sum::<f64>() / users.len() as f64;
        let v =
            0.5 + 0.3 * mean + 0.25 * (1.0 - (-pos).exp()) - 0.25 * (1.0 - (-1.5 * neg).exp()) - 0.1 * (-last).max(0.0);
        HealthComponent {
            name: "user_sentiment",
            weight: W_SENTIMENT,
            value: v.clamp(0.0, 1.0),
            evidence: format!("{n_pos} positive and {n_neg} negative of {} user turns; last {last:+.2}", users.len()),
        }
    };

    // Positive outcomes: user turns that thank or praise (without friction in the same turn) and agent turns that
    // report a completed task. Evidence of success, saturating; its absence is not a failure.
    let friction_at = |i: usize| findings.iter().any(|f| f.turn == Some(i) && f.kind == "user_frustration");
    let thanks = users.iter().filter(|&&i| tx[i].appreciation && !friction_at(i)).count();
    let done = (0..t.turns.len()).filter(|&i| t.turns[i].role == Role::Assistant && tx[i].hits.success).count();
    let outcomes = (thanks + done) as f64;
    let appreciation_c = HealthComponent {
        name: "positive_outcomes",
        weight: W_APPRECIATION,
        value: if users.is_empty() { 1.0 } else { 1.0 - 0.6 * (-outcomes / 1.5).exp() },
        evidence: format!("{thanks} user turns thank or praise; {done} agent turns report a completed task"),
    };

    // Failure burden: severity-weighted findings, saturating.
    let burden: f64 = findings.iter().map(|f| severity_weight(f.severity) * f.confidence).sum();
    let burden_c = HealthComponent {
        name: "failure_burden",
        weight: W_BURDEN,
        value: (-0.6 * burden).exp(),
        evidence: if findings.is_empty() {
            "no failures".into()
        } else {
            let high = findings.iter().filter(|f| f.severity >= Severity::High).count();
            format!("{} findings ({high} high or critical), weighted burden {burden:.2}", findings.len())
        },
    };

    // Dissatisfaction: the two worst user-turn risks (one bad turn matters; a single blip is not everything).
    let mut ur: Vec<f64> = users.iter().map(|&i| risk.get(i).copied().unwrap_or(0.0)).collect();
    ur.sort_by(|a, b| b.total_cmp(a));
    // Mostly the mean (how much of the conversation went badly), plus the single worst turn.
    let mean_risk = ur.iter().sum::<f64>() / ur.len().max(1) as f64;
    let top = 0.7 * mean_risk + 0.3 * ur.first().copied().unwrap_or(0.0);
    let risky = ur.iter().filter(|&&r| r >= 0.3).count();
    let dis_c = HealthComponent {
        name: "dissatisfaction",
        weight: W_DISSATISFACTION,
        value: (1.0 - top).clamp(0.0, 1.0),
        evidence: format!(
            "{risky} of {} user turns look dissatisfied; worst risk {:.2}",
            ur.len(),
            ur.first().copied().unwrap_or(0.0)
        ),
    };

    // Resolution: how the conversation ended.
    let open_esc = findings.iter().any(|f| f.kind == "escalation_request" && f.subtype == "open");
    let abandoned = findings.iter().any(|f| f.kind == "abandonment");
    let last_user = users.last().copied();
    let last_friction =
        last_user.is_some_and(|u| findings.iter().any(|f| f.turn == Some(u) && f.kind == "user_frustration"));
    let last_agent_failed = t.turns.iter().rposition(|x| x.role == Role::Assistant).is_some_and(|a| {
        findings
            .iter()
            .any(|f| f.turn == Some(a) && matches!(f.kind, "agent_refusal" | "repetition_loop" | "empty_reply"))
    });
    let (mut res, mut why) = match last_user {
        None => (1.0, "no user turns".to_string()),
        Some(u) if tx[u].closing && s(u) >= -0.05 => (1.0, "ended with thanks or a polite close".to_string()),
        Some(u) if s(u) > 0.3 => (0.9, "ended on a positive user turn".to_string()),
        Some(_) => (0.7, "no explicit close".to_string()),
    };
    let mut cap = |v: f64, reason: &str| {
        if v < res {
            res = v;
            why = reason.to_string();
        }
    };
    if last_friction {
        cap(0.3, "last user turn shows friction");
    }
    if last_agent_failed {
        cap(0.3, "last agent reply failed");
    }
    if open_esc && t.is_final {
        cap(0.0, "escalation requested and never resolved");
    } else if open_esc {
        cap(0.3, "escalation requested, not yet resolved");
    }
    if abandoned {
        cap(0.1, "user left right after a failed turn");
    }
    let res_c = HealthComponent { name: "resolution", weight: W_RESOLUTION, value: res, evidence: why };

    // Agent quality: refusals, inability, loops, empty replies, tool errors.
    let agent_bad: Vec<&Finding> = findings
        .iter()
        .filter(|f| matches!(f.kind, "agent_refusal" | "repetition_loop" | "empty_reply" | "tool_error"))
        .collect();
    let agent_w: f64 = agent_bad.iter().map(|f| severity_weight(f.severity)).sum();
    let agent_c = HealthComponent {
        name: "agent_quality",
        weight: W_AGENT,
        value: 1.0 / (1.0 + agent_w),
        evidence: if agent_bad.is_empty() {
            "no refusals, loops, empty replies or tool errors".into()
        } else {
            count_by_kind(&agent_bad)
        },
    };

    // Efficiency: the user had to ask again.
    let reps: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.kind == "repeated_question" || (f.kind == "user_frustration" && f.subtype == "retry"))
        .collect();
    let eff_c = HealthComponent {
        name: "efficiency",
        weight: W_EFFICIENCY,
        value: 1.0 / (1.0 + 0.7 * reps.len() as f64),
        evidence: if reps.is_empty() { "no repeated questions".into() } else { count_by_kind(&reps) },
    };

    let components = vec![sentiment_c, appreciation_c, burden_c, dis_c, res_c, agent_c, eff_c];
    let total: f64 =
        components.iter().map(|c| c.weight * c.value).sum::<f64>() / components.iter().map(|c| c.weight).sum::<f64>();
    Health { score: (100.0 * total).clamp(0.0, 100.0), components }
}

fn count_by_kind(fs: &[&Finding]) -> String {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for f in fs {
        match kinds.iter_mut().find(|(k, _)| *k == f.kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((f.kind, 1)),
        }
    }
    kinds.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use serde_json::Map;
    use time::OffsetDateTime;

    use super::*;
    use crate::analysis::{Turn, detect::detect};
    use Role::{Assistant as A, User as U};

    fn convo(lines: &[(Role, &str)], is_final: bool) -> Transcript {
        Transcript {
            turns: lines
                .iter()
                .map(|(r, c)| Turn {
                    role: *r,
                    content: c.to_string(),
                    status: "complete".into(),
                    created_at: OffsetDateTime::UNIX_EPOCH,
                    latency_ms: None,
                    metadata: Map::new(),
                })
                .collect(),
            is_final,
        }
    }

    fn run(t: &Transcript, s: &[f64]) -> (Vec<Finding>, Health) {
        let f = detect(t, s);
        let h = score(t, s, &f);
        (f, h)
    }

    #[test]
    fn weights_sum_to_one() {
        let (_, h) = run(&convo(&[(U, "hi"), (A, "hello")], true), &[0.0, 0.0]);
        let w: f64 = h.components.iter().map(|c| c.weight).sum();
        assert!((w - 1.0).abs() < 1e-9);
        assert!(h.components.iter().all(|c| (0.0..=1.0).contains(&c.value) && !c.evidence.is_empty()));
    }

    #[test]
    fn frustrated_user_asking_for_a_human_is_unhealthy() {
        let t = convo(
            &[
                (U, "My order never arrived"),
                (A, "I'm sorry, I can't help with that."),
                (U, "This is ridiculous, a complete waste of time!!"),
                (A, "I'm sorry, I can't help with that."),
                (U, "Let me talk to a real person NOW"),
            ],
            true,
        );
        let s = [-0.2, 0.0, -0.8, 0.0, -0.3];
        let (f, h) = run(&t, &s);
        assert!(f.iter().any(|f| f.kind == "user_frustration" && f.subtype == "frustration"), "{f:?}");
        assert!(f.iter().any(|f| f.kind == "escalation_request"));
        assert!(h.score < 40.0, "{h:?}");
    }

    #[test]
    fn happy_conversation_is_healthy() {
        let t = convo(
            &[
                (U, "Can you find me an Italian restaurant in the centre?"),
                (A, "Sure, Da Vinci is a popular Italian place in the centre."),
                (U, "Great, book a table for two at 7pm please."),
                (A, "Done, your reference is X12."),
                (U, "Thank you so much, that's perfect!"),
                (A, "You're welcome, enjoy your meal."),
            ],
            true,
        );
        let s = [0.0, 0.4, 0.6, 0.0, 0.8, 0.6];
        let (f, h) = run(&t, &s);
        assert!(f.is_empty(), "{f:?}");
        assert!(h.score >= 80.0, "{h:?}");
        // Still healthy without sentiment.
        let (_, h0) = run(&t, &[0.0; 6]);
        assert!(h0.score >= 75.0, "{h0:?}");
    }

    #[test]
    fn adding_a_failure_never_raises_the_score() {
        let base = [(U, "What are the hours?"), (A, "9 to 5."), (U, "ok")];
        let (_, h0) = run(&convo(&base, true), &[0.0; 3]);
        let variants: Vec<Vec<(Role, &str)>> = vec![
            vec![(U, "What are the hours?"), (A, "I'm unable to help with that."), (U, "ok")],
            vec![(U, "What are the hours?"), (A, ""), (U, "ok")],
            vec![(U, "What are the hours?"), (A, "9 to 5."), (U, "No, I said the weekend hours")],
            vec![(U, "What are the hours?"), (A, "9 to 5."), (U, "I want to talk to a human")],
        ];
        for v in variants {
            let (_, h) = run(&convo(&v, true), &[0.0; 3]);
            assert!(h.score <= h0.score, "{v:?}: {} > {}", h.score, h0.score);
        }
        // Same transcript, extra finding: never higher.
        let t = convo(&base, true);
        let mut f = detect(&t, &[0.0; 3]);
        let h1 = score(&t, &[0.0; 3], &f);
        f.push(Finding {
            kind: "tool_error",
            subtype: "",
            severity: Severity::Medium,
            turn: Some(1),
            evidence: "error".into(),
            detector: "tool_error",
            detector_version: 1,
            confidence: 0.9,
            fingerprint: "tool_error:tool_error:1".into(),
        });
        assert!(score(&t, &[0.0; 3], &f).score < h1.score);
        // More negative sentiment never raises it either.
        let h2 = score(&t, &[0.0, 0.0, -0.6], &f);
        assert!(h2.score <= score(&t, &[0.0; 3], &f).score);
    }

    #[test]
    fn through_analyse_with_real_sentiment() {
        let happy = convo(
            &[
                (U, "Hi, can you help me find a cheap hotel in the north?"),
                (A, "Sure! The Acorn Guest House is cheap and in the north."),
                (U, "Perfect, please book it for 2 nights."),
                (A, "Booking was successful. Your reference number is 7GAWK763."),
                (U, "Great, thank you so much for your help!"),
            ],
            true,
        );
        let a = crate::analysis::analyse(&happy);
        assert!(a.findings.is_empty(), "{:?}", a.findings);
        assert!(a.health.score >= 80.0, "{:?}", a.health);
        let angry = convo(
            &[
                (U, "My refund still hasn't arrived"),
                (A, "I'm sorry, I can't help with refunds."),
                (U, "This is ridiculous and useless!! I hate this."),
                (A, "I'm sorry, I can't help with refunds."),
                (U, "I want to speak to a human agent right now"),
            ],
            true,
        );
        let b = crate::analysis::analyse(&angry);
        let kinds: Vec<&str> = b.findings.iter().map(|f| f.kind).collect();
        assert!(kinds.contains(&"user_frustration") && kinds.contains(&"escalation_request"), "{kinds:?}");
        assert!(b.health.score < 40.0, "{:?}", b.health);
        assert!(b.turn_risk[3] > a.turn_risk[3]);
    }

    #[test]
    fn empty_and_tiny_transcripts() {
        let (f, h) = run(&Transcript::default(), &[]);
        assert!(f.is_empty());
        assert!((0.0..=100.0).contains(&h.score));
        let (_, h) = run(&convo(&[(U, "hello?")], false), &[0.0]);
        assert!((0.0..=100.0).contains(&h.score));
        let (_, h) = run(&convo(&[(A, "Hi, how can I help?")], true), &[0.0]);
        assert!(h.score > 80.0);
    }
}
