//! Evaluation of the health score and the per-turn risk against labelled corpora: parsers for the USS
//! (User Satisfaction Simulation, Sun et al. 2021) and DBDC3 (Dialogue Breakdown Detection Challenge) files, and
//! the metrics (Spearman with average ranks and a bootstrap interval, Mann–Whitney AUC). The data is read from
//! outside the repository; nothing here knows where the scores come from (`mentorfy bench health` runs the real
//! pipeline, `examples/eval_health.rs` calls [`crate::analysis::analyse`] directly).

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::analysis::{Transcript, Turn};
use crate::ingest::Role;

// ---------------------------------------------------------------------------------------------------------
// Corpora
// ---------------------------------------------------------------------------------------------------------

/// One utterance of a USS dialogue.
#[derive(Debug, Clone, PartialEq)]
pub struct UssTurn {
    /// USER → [`Role::User`], SYSTEM → [`Role::Assistant`].
    pub role: Role,
    pub text: String,
    /// Majority rating (1-5, ties to the lower) of a rated USER turn; `None` for SYSTEM turns and unrated ones.
    pub rating: Option<u32>,
}

/// A USS dialogue with its dialogue-level rating.
#[derive(Debug, Clone, PartialEq)]
pub struct UssDialogue {
    pub turns: Vec<UssTurn>,
    /// Majority of the OVERALL line's ratings (ties to the lower).
    pub overall: u32,
}

/// One utterance of a DBDC dialogue.
#[derive(Debug, Clone, PartialEq)]
pub struct DbdcTurn {
    /// U → [`Role::User`], anything else (S) → [`Role::Assistant`].
    pub role: Role,
    pub text: String,
    /// Annotated (system) turns: whether X has strictly more votes than O and than T (the majority label is X).
    pub breakdown: Option<bool>,
    /// Annotated turns: the share of annotators who said X.
    pub x_share: Option<f64>,
}

/// A DBDC dialogue (one JSON file).
#[derive(Debug, Clone, PartialEq)]
pub struct DbdcDialogue {
    /// The file's stem (or its `dialogue-id`).
    pub id: String,
    pub turns: Vec<DbdcTurn>,
}

/// Majority vote of ratings, ties to the lower rating; `None` when there are none.
pub fn majority(ratings: &[u32]) -> Option<u32> {
    let mut count: HashMap<u32, usize> = HashMap::new();
    for &r in ratings {
        *count.entry(r).or_default() += 1;
    }
    let top = count.values().copied().max()?;
    count.iter().filter(|(_, c)| **c == top).map(|(r, _)| *r).min()
}

/// Parses a USS file (`ROLE<TAB>TEXT<TAB>ACTION<TAB>r1,r2,...` lines, dialogues separated by blank lines, each
/// ending with a `USER<TAB>OVERALL` line). Dialogues without an OVERALL rating are skipped.
pub fn parse_uss(text: &str) -> Vec<UssDialogue> {
    let mut out = Vec::new();
    let text = text.replace("\r\n", "\n");
    for block in text.split("\n\n") {
        let mut turns = Vec::new();
        let mut overall = None;
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            let mut cols = line.split('\t');
            let role = cols.next().unwrap_or("").trim();
            let txt = cols.next().unwrap_or("");
            let ratings: Vec<u32> =
                cols.nth(1).map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect()).unwrap_or_default();
            if role == "USER" && txt == "OVERALL" {
                overall = majority(&ratings);
                continue;
            }
            let user = role == "USER";
            turns.push(UssTurn {
                role: if user { Role::User } else { Role::Assistant },
                text: txt.to_owned(),
                rating: if user { majority(&ratings) } else { None },
            });
        }
        if let (Some(overall), false) = (overall, turns.is_empty()) {
            out.push(UssDialogue { turns, overall });
        }
    }
    out
}

/// Reads and parses a USS file.
pub fn read_uss(path: &Path) -> std::io::Result<Vec<UssDialogue>> {
    Ok(parse_uss(&std::fs::read_to_string(path)?))
}

/// Parses one DBDC3 dialogue JSON; `None` when it has no `turns` array.
pub fn parse_dbdc(id: &str, json: &str) -> Option<DbdcDialogue> {
    let v: Value = serde_json::from_str(json).ok()?;
    let turns = v.get("turns")?.as_array()?;
    let id = v.get("dialogue-id").and_then(Value::as_str).unwrap_or(id).to_owned();
    let turns = turns
        .iter()
        .map(|t| {
            let speaker = t.get("speaker").and_then(Value::as_str).unwrap_or("");
            let labels: Vec<&str> = t
                .get("annotations")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|a| a.get("breakdown").and_then(Value::as_str)).collect())
                .unwrap_or_default();
            let (breakdown, x_share) = if labels.is_empty() {
                (None, None)
            } else {
                let count = |l: &str| labels.iter().filter(|x| **x == l).count();
                let (o, t, x) = (count("O"), count("T"), count("X"));
                (Some(x > o && x > t), Some(x as f64 / labels.len() as f64))
            };
            DbdcTurn {
                role: if speaker == "U" { Role::User } else { Role::Assistant },
                text: t.get("utterance").and_then(Value::as_str).unwrap_or("").to_owned(),
                breakdown,
                x_share,
            }
        })
        .collect();
    Some(DbdcDialogue { id, turns })
}

/// Reads every `*.json` dialogue in `dir` and its immediate subfolders, in path order (unparsable files are
/// skipped; `LICENSE.txt` and the like are ignored).
pub fn read_dbdc_dir(dir: &Path) -> std::io::Result<Vec<DbdcDialogue>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p)?.flatten().map(|e| e.path()));
        } else {
            files.push(p);
        }
    }
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_owned();
        if let Some(d) = parse_dbdc(&stem, &std::fs::read_to_string(&f)?) {
            out.push(d);
        }
    }
    Ok(out)
}

/// A final transcript of `(role, text)` turns, `step` apart from `start`, as the analysers see stored messages
/// (status `complete`, no latency, no metadata).
pub fn transcript<'a>(
    turns: impl IntoIterator<Item = (Role, &'a str)>,
    start: OffsetDateTime,
    step: time::Duration,
) -> Transcript {
    let turns = turns
        .into_iter()
        .enumerate()
        .map(|(i, (role, text))| Turn {
            role,
            content: text.to_owned(),
            status: "complete".into(),
            created_at: start + step * i32::try_from(i).unwrap_or(i32::MAX),
            latency_ms: None,
            metadata: Map::new(),
        })
        .collect();
    Transcript { turns, is_final: true }
}

impl UssDialogue {
    pub fn pairs(&self) -> impl Iterator<Item = (Role, &str)> {
        self.turns.iter().map(|t| (t.role, t.text.as_str()))
    }
}

impl DbdcDialogue {
    pub fn pairs(&self) -> impl Iterator<Item = (Role, &str)> {
        self.turns.iter().map(|t| (t.role, t.text.as_str()))
    }
}

// ---------------------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------------------

/// Ranks 1..=n, ties sharing the average of their ranks.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson correlation; NaN with fewer than 2 points or a constant side.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return f64::NAN;
    }
    let nf = n as f64;
    let ma = a[..n].iter().sum::<f64>() / nf;
    let mb = b[..n].iter().sum::<f64>() / nf;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

/// Spearman rank correlation (Pearson of the average ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// A statistic with its percentile bootstrap 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WithCi {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// Number of bootstrap resamples.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;
/// Seed of the bootstrap's xorshift generator (fixed: the same data always gives the same interval).
pub const BOOTSTRAP_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// Spearman with a percentile bootstrap 95% interval over `resamples` resamples of the pairs.
pub fn spearman_ci(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> WithCi {
    let value = spearman(a, b);
    let n = a.len().min(b.len());
    if n < 2 || resamples == 0 {
        return WithCi { value, lo: f64::NAN, hi: f64::NAN };
    }
    let mut state = seed.max(1);
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut stats = Vec::with_capacity(resamples);
    let (mut x, mut y) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..resamples {
        x.clear();
        y.clear();
        for _ in 0..n {
            let k = (next() % n as u64) as usize;
            x.push(a[k]);
            y.push(b[k]);
        }
        let r = spearman(&x, &y);
        if r.is_finite() {
            stats.push(r);
        }
    }
    stats.sort_by(f64::total_cmp);
    let at = |q: usize| stats.get(stats.len() * q / 1000).copied().unwrap_or(f64::NAN);
    WithCi { value, lo: at(25), hi: at(975) }
}

/// AUC of `score` for the positive class: the probability that a random positive scores above a random negative,
/// ties counting one half (Mann–Whitney U / (n₊ n₋)). NaN when either class is empty.
pub fn auc(score: &[f64], positive: &[bool]) -> f64 {
    let r = ranks(score);
    let np = positive.iter().filter(|p| **p).count() as f64;
    let nn = positive.len() as f64 - np;
    if np == 0.0 || nn == 0.0 {
        return f64::NAN;
    }
    let sum: f64 = r.iter().zip(positive).filter(|(_, p)| **p).map(|(r, _)| *r).sum();
    (sum - np * (np + 1.0) / 2.0) / (np * nn)
}

// ---------------------------------------------------------------------------------------------------------
// Per-corpus results
// ---------------------------------------------------------------------------------------------------------

/// What the analysis gave one USS dialogue, with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct UssScored {
    /// Health 0..100.
    pub health: f64,
    pub overall: u32,
    /// Utterances (without the OVERALL line).
    pub length: usize,
    /// Per rated USER turn: its risk and whether its majority rating is ≤ 2.
    pub turns: Vec<(f64, bool)>,
}

impl UssScored {
    /// Pairs a dialogue with its health and per-turn risk (aligned with `d.turns`); every USER turn with a
    /// rating contributes its own risk.
    pub fn new(d: &UssDialogue, health: f64, turn_risk: &[f64]) -> Self {
        let turns = d.turns.iter().zip(turn_risk).filter_map(|(t, risk)| t.rating.map(|r| (*risk, r <= 2))).collect();
        Self { health, overall: d.overall, length: d.turns.len(), turns }
    }
}

/// USS metrics of a set of dialogues.
#[derive(Debug, Clone, PartialEq)]
pub struct UssMetrics {
    pub n: usize,
    /// Spearman(health, OVERALL) with its bootstrap interval.
    pub spearman: WithCi,
    /// AUC of −health for OVERALL < 3.
    pub auc_overall_lt3: f64,
    /// AUC of dialogue length alone for OVERALL < 3, oriented the way that works on these data (shorter = worse
    /// when [`UssMetrics::length_shorter_is_worse`]): `max(AUC, 1 − AUC)`, an upper bound for a length rule.
    pub auc_length_baseline: f64,
    /// Whether shorter dialogues are the likelier to be rated OVERALL < 3.
    pub length_shorter_is_worse: bool,
    /// Spearman(length, OVERALL), signed (positive: longer dialogues are rated higher).
    pub spearman_length: f64,
    /// Dialogues with OVERALL < 3.
    pub overall_lt3: usize,
    /// AUC of the risk of rated USER turns for a rating ≤ 2.
    pub turn_auc: f64,
    pub turns: usize,
    pub turns_low: usize,
    pub mean_health: f64,
}

pub fn uss_metrics(scored: &[UssScored]) -> UssMetrics {
    let health: Vec<f64> = scored.iter().map(|s| s.health).collect();
    let neg_health: Vec<f64> = health.iter().map(|h| -h).collect();
    let overall: Vec<f64> = scored.iter().map(|s| f64::from(s.overall)).collect();
    let length: Vec<f64> = scored.iter().map(|s| s.length as f64).collect();
    let low: Vec<bool> = scored.iter().map(|s| s.overall < 3).collect();
    let (risk, rated_low): (Vec<f64>, Vec<bool>) = scored.iter().flat_map(|s| s.turns.iter().copied()).unzip();
    let longer_is_worse = auc(&length, &low);
    UssMetrics {
        n: scored.len(),
        spearman: spearman_ci(&health, &overall, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
        auc_overall_lt3: auc(&neg_health, &low),
        auc_length_baseline: longer_is_worse.max(1.0 - longer_is_worse),
        length_shorter_is_worse: longer_is_worse < 0.5,
        spearman_length: spearman(&length, &overall),
        overall_lt3: low.iter().filter(|x| **x).count(),
        turn_auc: auc(&risk, &rated_low),
        turns: rated_low.len(),
        turns_low: rated_low.iter().filter(|x| **x).count(),
        mean_health: health.iter().sum::<f64>() / health.len().max(1) as f64,
    }
}

/// DBDC metrics over the annotated system turns.
#[derive(Debug, Clone, PartialEq)]
pub struct DbdcMetrics {
    pub dialogues: usize,
    /// Annotated (system) turns.
    pub n: usize,
    /// Turns whose majority label is X.
    pub positives: usize,
    /// AUC of the turn risk for a majority X.
    pub auc: f64,
    /// Spearman(risk, share of X votes).
    pub spearman_x_share: f64,
}

/// `turns`: per annotated turn, its risk, whether the majority says X, and the X share.
pub fn dbdc_metrics(dialogues: usize, turns: &[(f64, bool, f64)]) -> DbdcMetrics {
    let risk: Vec<f64> = turns.iter().map(|t| t.0).collect();
    let x: Vec<bool> = turns.iter().map(|t| t.1).collect();
    let share: Vec<f64> = turns.iter().map(|t| t.2).collect();
    DbdcMetrics {
        dialogues,
        n: turns.len(),
        positives: x.iter().filter(|v| **v).count(),
        auc: auc(&risk, &x),
        spearman_x_share: spearman(&risk, &share),
    }
}

/// The annotated turns of a DBDC dialogue with their risk (aligned with `d.turns`), for [`dbdc_metrics`].
pub fn dbdc_turns(d: &DbdcDialogue, turn_risk: &[f64]) -> Vec<(f64, bool, f64)> {
    d.turns.iter().zip(turn_risk).filter_map(|(t, r)| Some((*r, t.breakdown?, t.x_share?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn majority_ties_to_the_lower_rating() {
        assert_eq!(majority(&[3, 3, 2]), Some(3));
        assert_eq!(majority(&[4, 2, 4, 2, 5]), Some(2));
        assert_eq!(majority(&[]), None);
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 20.0, 20.0, 5.0]), vec![2.0, 3.5, 3.5, 1.0]);
    }

    #[test]
    fn spearman_hand_cases() {
        assert!(close(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), 1.0));
        assert!(close(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0));
        // Ranks (1,2,3,4) vs (1,3,2,4): d² = 0+1+1+0 = 2, ρ = 1 − 6·2/(4·15) = 0.8.
        assert!(close(spearman(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]), 0.8));
        // With a tie: ranks (1,2,3) vs (1.5,1.5,3): Pearson = 1.5 / sqrt(2 · 1.5) = 0.866…
        assert!(close(spearman(&[1.0, 2.0, 3.0], &[5.0, 5.0, 9.0]), 1.5 / (2.0f64 * 1.5).sqrt()));
        assert!(spearman(&[1.0], &[1.0]).is_nan());
        assert!(spearman(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn bootstrap_interval_is_deterministic_and_brackets() {
        let a: Vec<f64> = (0..50).map(f64::from).collect();
        let b: Vec<f64> = (0..50).map(|i| f64::from(i) + f64::from((i * 7) % 11) * 3.0).collect();
        let x = spearman_ci(&a, &b, 200, 7);
        let y = spearman_ci(&a, &b, 200, 7);
        assert_eq!(x, y);
        assert!(x.lo <= x.value && x.value <= x.hi, "{x:?}");
        let perfect = spearman_ci(&a, &a, 100, 1);
        assert!(close(perfect.lo, 1.0) && close(perfect.hi, 1.0));
    }

    #[test]
    fn auc_hand_cases() {
        assert!(close(auc(&[0.9, 0.8, 0.1, 0.2], &[true, true, false, false]), 1.0));
        assert!(close(auc(&[0.1, 0.2, 0.9, 0.8], &[true, true, false, false]), 0.0));
        // Pairs (pos, neg): (0.5,0.5) tie = ½, (0.5,0.1) = 1, (0.7,0.5) = 1, (0.7,0.1) = 1 → 3.5 / 4.
        assert!(close(auc(&[0.5, 0.7, 0.5, 0.1], &[true, true, false, false]), 0.875));
        assert!(close(auc(&[1.0, 1.0, 1.0], &[true, false, false]), 0.5));
        assert!(auc(&[1.0, 2.0], &[true, true]).is_nan());
    }

    #[test]
    fn parses_uss() {
        let text = "USER\thello\t\t3,3,2\nSYSTEM\thi there\tgreet\t\nUSER\tthis is useless\t\t2,1,2\n\
                    USER\tOVERALL\t\t2,3,3,2\n\nSYSTEM\tno overall here\t\t\n\n\
                    USER\tbye\t\t4,4,5\nUSER\tOVERALL\t\t5,4\n";
        let d = parse_uss(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].overall, 2);
        assert_eq!(d[0].turns.len(), 3);
        assert_eq!(d[0].turns[1].role, Role::Assistant);
        let ratings: Vec<_> = d[0].turns.iter().map(|t| t.rating).collect();
        assert_eq!(ratings, vec![Some(3), None, Some(2)]);
        assert_eq!(d[1].overall, 4);
        let s = UssScored::new(&d[0], 60.0, &[0.1, 0.9, 0.8]);
        assert_eq!(s.turns, vec![(0.1, false), (0.8, true)]);
        assert_eq!(s.length, 3);
    }

    #[test]
    fn parses_dbdc() {
        let json = r#"{"dialogue-id":"d1","turns":[
            {"speaker":"S","utterance":"Hello","annotations":[]},
            {"speaker":"U","utterance":"Hi"},
            {"speaker":"S","utterance":"Bananas.","annotations":[{"breakdown":"X"},{"breakdown":"X"},{"breakdown":"T"},{"breakdown":"O"}]},
            {"speaker":"S","utterance":"Sure.","annotations":[{"breakdown":"X"},{"breakdown":"O"}]}]}"#;
        let d = parse_dbdc("file", json);
        assert!(d.is_some());
        let Some(d) = d else { return };
        assert_eq!(d.id, "d1");
        assert_eq!(d.turns[1].role, Role::User);
        let labels: Vec<_> = d.turns.iter().map(|t| t.breakdown).collect();
        assert_eq!(labels, vec![None, None, Some(true), Some(false)]);
        let turns = dbdc_turns(&d, &[0.0, 0.1, 0.9, 0.2]);
        assert_eq!(turns, vec![(0.9, true, 0.5), (0.2, false, 0.5)]);
        let m = dbdc_metrics(1, &turns);
        assert!(close(m.auc, 1.0));
        assert_eq!((m.n, m.positives), (2, 1));
    }
}
