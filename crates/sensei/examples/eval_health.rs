//! Sanity check of the health score and per-turn risk against labelled corpora (read from outside the repository):
//!
//! `cargo run --release -p mentorfy-sensei --example eval_health -- /work/shared/data`
//!
//! USS (SGD, MWOZ): Spearman of health vs the dialogue OVERALL rating (majority vote, ties to the lower) with a
//! bootstrap 95% CI, AUC of health for OVERALL < 3, dialogue-length baseline, and AUC of the per-turn risk of USER
//! turns against a majority rating ≤ 2. DBDC3 en-dev: AUC of the per-system-turn risk against a majority "X".

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use mentorfy_sensei::analysis::{Analysis, Transcript, Turn, analyse, detect, health};
use mentorfy_sensei::ingest::Role;
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// `analyse`, or the same pipeline with sentiment forced to 0 when `EVAL_NO_SENTIMENT` is set.
fn run(t: &Transcript) -> Analysis {
    if std::env::var_os("EVAL_NO_SENTIMENT").is_none() {
        return analyse(t);
    }
    let sentiment = vec![0.0; t.turns.len()];
    let findings = detect::detect(t, &sentiment);
    let turn_risk = detect::turn_risk(t, &sentiment, &findings);
    let health = health::score(t, &sentiment, &findings);
    Analysis { sentiment, findings, health, turn_risk }
}

fn turn(role: Role, content: &str, i: usize) -> Turn {
    Turn {
        role,
        content: content.to_string(),
        status: "complete".into(),
        created_at: OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i as i64),
        latency_ms: None,
        metadata: Map::new(),
    }
}

fn majority(r: &[u32]) -> u32 {
    let mut c: HashMap<u32, usize> = HashMap::new();
    for &x in r {
        *c.entry(x).or_default() += 1;
    }
    let m = c.values().copied().max().unwrap_or(0);
    c.iter().filter(|(_, v)| **v == m).map(|(k, _)| *k).min().unwrap_or(3)
}

struct UssDialogue {
    t: Transcript,
    /// Majority rating per turn (USER turns only).
    ratings: Vec<Option<u32>>,
    overall: u32,
}

fn parse_uss(path: &Path) -> Vec<UssDialogue> {
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("cannot read {}", path.display());
        return Vec::new();
    };
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let lines: Vec<Vec<&str>> =
            block.lines().filter(|l| !l.trim().is_empty()).map(|l| l.split('\t').collect()).collect();
        if lines.len() < 2 {
            continue;
        }
        let mut t = Transcript { turns: Vec::new(), is_final: true };
        let mut ratings = Vec::new();
        let mut overall = None;
        for l in &lines {
            let role = l.first().copied().unwrap_or("");
            let txt = l.get(1).copied().unwrap_or("");
            let rs: Vec<u32> =
                l.get(3).map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect()).unwrap_or_default();
            if role == "USER" && txt == "OVERALL" {
                overall = Some(majority(&rs));
                continue;
            }
            let r = if role == "USER" { Role::User } else { Role::Assistant };
            let i = t.turns.len();
            t.turns.push(turn(r, txt, i));
            ratings.push(if role == "USER" && !rs.is_empty() { Some(majority(&rs)) } else { None });
        }
        if let Some(o) = overall {
            out.push(UssDialogue { t, ratings, overall: o });
        }
    }
    out
}

struct DbdcDialogue {
    t: Transcript,
    /// Per turn: Some(true) when the plurality label is X, Some(false) otherwise; None for user turns.
    x: Vec<Option<bool>>,
    /// Per turn: share of annotators saying X.
    x_share: Vec<Option<f64>>,
}

fn parse_dbdc(dir: &Path) -> Vec<DbdcDialogue> {
    let mut files = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        eprintln!("cannot read {}", dir.display());
        return Vec::new();
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Ok(inner) = std::fs::read_dir(&p) {
                files.extend(inner.flatten().map(|e| e.path()));
            }
        } else {
            files.push(p);
        }
    }
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
        let Some(turns) = v.get("turns").and_then(Value::as_array) else { continue };
        let mut t = Transcript { turns: Vec::new(), is_final: true };
        let mut x = Vec::new();
        let mut x_share = Vec::new();
        for (i, tv) in turns.iter().enumerate() {
            let sp = tv.get("speaker").and_then(Value::as_str).unwrap_or("");
            let utt = tv.get("utterance").and_then(Value::as_str).unwrap_or("");
            let role = if sp == "U" { Role::User } else { Role::Assistant };
            t.turns.push(turn(role, utt, i));
            let ann: Vec<&str> = tv
                .get("annotations")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|a| a.get("breakdown").and_then(Value::as_str)).collect())
                .unwrap_or_default();
            if ann.is_empty() {
                x.push(None);
                x_share.push(None);
            } else {
                let c = |l: &str| ann.iter().filter(|a| **a == l).count();
                let (o, tt, xx) = (c("O"), c("T"), c("X"));
                x.push(Some(xx > o && xx > tt));
                x_share.push(Some(xx as f64 / ann.len() as f64));
            }
        }
        out.push(DbdcDialogue { t, x, x_share });
    }
    out
}

fn ranks(v: &[f64]) -> Vec<f64> {
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
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    sab / (saa * sbb).sqrt()
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Spearman with a percentile bootstrap 95% CI (1,000 resamples, fixed-seed xorshift).
fn spearman_ci(a: &[f64], b: &[f64]) -> (f64, f64, f64) {
    let rho = spearman(a, b);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let n = a.len();
    let mut bs = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let (mut x, mut y) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let k = (next() % n as u64) as usize;
            x.push(a[k]);
            y.push(b[k]);
        }
        let r = spearman(&x, &y);
        if r.is_finite() {
            bs.push(r);
        }
    }
    bs.sort_by(f64::total_cmp);
    let lo = bs.get(bs.len() * 25 / 1000).copied().unwrap_or(f64::NAN);
    let hi = bs.get(bs.len() * 975 / 1000).copied().unwrap_or(f64::NAN);
    (rho, lo, hi)
}

/// AUC (Mann–Whitney) of `score` for the positive class.
fn auc(score: &[f64], pos: &[bool]) -> f64 {
    let r = ranks(score);
    let np = pos.iter().filter(|p| **p).count() as f64;
    let nn = pos.len() as f64 - np;
    if np == 0.0 || nn == 0.0 {
        return f64::NAN;
    }
    let sum: f64 = r.iter().zip(pos).filter(|(_, p)| **p).map(|(r, _)| *r).sum();
    (sum - np * (np + 1.0) / 2.0) / (np * nn)
}

#[derive(Default)]
struct UssAcc {
    health: Vec<f64>,
    overall: Vec<f64>,
    len: Vec<f64>,
    turn_risk: Vec<f64>,
    turn_low: Vec<bool>,
    /// Per component name: values in dialogue order.
    comps: Vec<(&'static str, Vec<f64>)>,
}

fn eval_uss(name: &str, ds: &[UssDialogue], acc: &mut UssAcc) {
    let mut a = UssAcc::default();
    let mut kinds: HashMap<&'static str, usize> = HashMap::new();
    for d in ds {
        let an = run(&d.t);
        for f in &an.findings {
            *kinds.entry(f.kind).or_default() += 1;
            if let Ok(k) = std::env::var("EVAL_SHOW")
                && (k == f.kind || k == f.subtype)
                && kinds[f.kind] % 7 == 1
            {
                println!("    [{}:{}] {}", f.kind, f.subtype, f.evidence);
            }
        }
        a.health.push(an.health.score);
        for c in &an.health.components {
            match a.comps.iter_mut().find(|(n, _)| *n == c.name) {
                Some((_, v)) => v.push(c.value),
                None => a.comps.push((c.name, vec![c.value])),
            }
        }
        a.overall.push(f64::from(d.overall));
        a.len.push(d.t.turns.len() as f64);
        for (i, r) in d.ratings.iter().enumerate() {
            if let Some(r) = r {
                a.turn_risk.push(an.turn_risk[i]);
                if std::env::var_os("EVAL_FN").is_some()
                    && *r <= 2
                    && an.turn_risk[i] < 0.12
                    && a.turn_risk.len() % 5 == 0
                {
                    let prev = if i > 0 { d.t.turns[i - 1].content.as_str() } else { "" };
                    println!("    FN {:.2} S: {prev}\n         U: {}", an.turn_risk[i], d.t.turns[i].content);
                }
                a.turn_low.push(*r <= 2);
            }
        }
    }
    report_uss(name, &a);
    let per: Vec<String> = a.comps.iter().map(|(n, v)| format!("{n} {:.3}", spearman(v, &a.overall))).collect();
    println!("  component Spearman vs OVERALL: {}", per.join(", "));
    let mut k: Vec<_> = kinds.into_iter().collect();
    k.sort();
    println!("  findings by kind: {k:?}");
    acc.health.extend(&a.health);
    acc.overall.extend(&a.overall);
    acc.len.extend(&a.len);
    acc.turn_risk.extend(&a.turn_risk);
    acc.turn_low.extend(&a.turn_low);
}

fn report_uss(name: &str, a: &UssAcc) {
    let (rho, lo, hi) = spearman_ci(&a.health, &a.overall);
    let neg_len: Vec<f64> = a.len.iter().map(|l| -l).collect();
    let low: Vec<bool> = a.overall.iter().map(|o| *o < 3.0).collect();
    let neg_health: Vec<f64> = a.health.iter().map(|h| -h).collect();
    let mean = a.health.iter().sum::<f64>() / a.health.len().max(1) as f64;
    println!(
        "{name}: n={} dialogues; Spearman(health, OVERALL) = {rho:.3} [95% CI {lo:.3}, {hi:.3}]; length baseline \
         Spearman(-len, OVERALL) = {:.3}; AUC(low health → OVERALL<3) = {:.3} ({} positives); mean health {mean:.1}",
        a.health.len(),
        spearman(&neg_len, &a.overall),
        auc(&neg_health, &low),
        low.iter().filter(|x| **x).count(),
    );
    println!(
        "  turn AUC(risk → user turn rated ≤2) = {:.3} ({} of {} turns)",
        auc(&a.turn_risk, &a.turn_low),
        a.turn_low.iter().filter(|x| **x).count(),
        a.turn_low.len()
    );
}

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| "/work/shared/data".into());
    let root = Path::new(&root);
    let mut pooled = UssAcc::default();
    let mut all: Vec<Transcript> = Vec::new();
    for f in ["SGD.txt", "MWOZ.txt"] {
        let ds = parse_uss(&root.join("uss").join(f));
        if ds.is_empty() {
            continue;
        }
        eval_uss(f, &ds, &mut pooled);
        all.extend(ds.into_iter().map(|d| d.t));
    }
    if !pooled.health.is_empty() {
        report_uss("USS pooled", &pooled);
    }

    let db = parse_dbdc(&root.join("dbdc3").join("en-dev"));
    if !db.is_empty() {
        let (mut risk, mut x, mut share) = (Vec::new(), Vec::new(), Vec::new());
        for d in &db {
            let an = run(&d.t);
            for i in 0..d.t.turns.len() {
                if let (Some(l), Some(s)) = (d.x[i], d.x_share[i]) {
                    risk.push(an.turn_risk[i]);
                    x.push(l);
                    share.push(s);
                }
            }
        }
        println!(
            "DBDC3 en-dev: {} dialogues, {} system turns, {} plurality-X; AUC(risk → X) = {:.3}; Spearman(risk, X share) = {:.3}",
            db.len(),
            x.len(),
            x.iter().filter(|v| **v).count(),
            auc(&risk, &x),
            spearman(&risk, &share)
        );
        all.extend(db.into_iter().map(|d| d.t));
    }

    // Throughput of the whole analyse() on every transcript (repeat to ~2 s).
    if !all.is_empty() {
        let msgs: usize = all.iter().map(|t| t.turns.len()).sum();
        let start = Instant::now();
        let mut rounds = 0;
        let mut sink = 0.0;
        while start.elapsed().as_secs_f64() < 2.0 {
            for t in &all {
                sink += run(t).health.score;
            }
            rounds += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        let convs = (all.len() * rounds) as f64 / secs;
        let per_msg = secs * 1e6 / (msgs * rounds) as f64;
        println!(
            "speed: {convs:.0} conversations/s (mean {:.1} messages each), {per_msg:.1} µs/message, ≈ {:.0} conversations/s of 20 messages, single thread (checksum {sink:.0})",
            msgs as f64 / all.len() as f64,
            1e6 / (per_msg * 20.0)
        );
    }
}
