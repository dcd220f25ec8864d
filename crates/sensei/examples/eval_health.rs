//! Quick look at the health score and per-turn risk against the labelled corpora, calling
//! [`analysis::analyse`] directly (no database), with diagnostics the benchmark does not print: Spearman of each
//! health component and the findings by kind. The real-pipeline figures come from `mentorfy bench health`; the
//! parsers and metrics of both are [`mentorfy_sensei::eval`].
//!
//! `cargo run --release -p mentorfy-sensei --example eval_health -- /work/shared/data`
//! (`EVAL_NO_SENTIMENT=1`: the same analysis with sentiment forced to 0.)

use std::collections::BTreeMap;
use std::path::Path;

use mentorfy_sensei::analysis::{Analysis, Transcript, analyse, detect, health};
use mentorfy_sensei::eval::{self, UssScored};
use time::OffsetDateTime;

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

fn transcript<'a>(pairs: impl IntoIterator<Item = (mentorfy_sensei::Role, &'a str)>) -> Transcript {
    eval::transcript(pairs, OffsetDateTime::UNIX_EPOCH, time::Duration::seconds(10))
}

fn print_uss(name: &str, scored: &[UssScored]) {
    let m = eval::uss_metrics(scored);
    println!(
        "{name}: n={} Spearman {:.3} [{:.3}, {:.3}], length {:+.3}; AUC OVERALL<3 {:.3} (length {:.3}, {} positives); \
         turn AUC {:.3} ({} of {} rated USER turns ≤2); mean health {:.1}",
        m.n,
        m.spearman.value,
        m.spearman.lo,
        m.spearman.hi,
        m.spearman_length,
        m.auc_overall_lt3,
        m.auc_length_baseline,
        m.overall_lt3,
        m.turn_auc,
        m.turns_low,
        m.turns,
        m.mean_health
    );
}

fn main() -> std::io::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "/work/shared/data".into());
    let root = Path::new(&root);
    let mut pooled = Vec::new();
    for f in ["SGD.txt", "MWOZ.txt"] {
        let dialogues = eval::read_uss(&root.join("uss").join(f))?;
        let mut scored = Vec::new();
        let mut components: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &dialogues {
            let a = run(&transcript(d.pairs()));
            for c in &a.health.components {
                components.entry(c.name).or_default().push(c.value);
            }
            for finding in &a.findings {
                *kinds.entry(finding.kind).or_default() += 1;
            }
            scored.push(UssScored::new(d, a.health.score, &a.turn_risk));
        }
        print_uss(f, &scored);
        let overall: Vec<f64> = scored.iter().map(|s| f64::from(s.overall)).collect();
        let per: Vec<String> =
            components.iter().map(|(n, v)| format!("{n} {:.3}", eval::spearman(v, &overall))).collect();
        println!("  component Spearman vs OVERALL: {}", per.join(", "));
        println!("  findings by kind: {kinds:?}");
        pooled.extend(scored);
    }
    print_uss("USS pooled", &pooled);

    let dbdc = eval::read_dbdc_dir(&root.join("dbdc3").join("en-dev"))?;
    let mut turns = Vec::new();
    for d in &dbdc {
        turns.extend(eval::dbdc_turns(d, &run(&transcript(d.pairs())).turn_risk));
    }
    let m = eval::dbdc_metrics(dbdc.len(), &turns);
    println!(
        "DBDC3 en-dev: {} dialogues, {} system turns, {} majority X; AUC {:.3}; Spearman(risk, X share) {:.3}",
        m.dialogues, m.n, m.positives, m.auc, m.spearman_x_share
    );
    Ok(())
}
