//! Measuring the offline answerer on a labelled set of customer messages
//! (`sigmaai kb-eval FILE`; the shipped set is `eval/kb/set.json`).
//!
//! Each case names a knowledge base of the file, a message (and optionally the customer's
//! earlier messages) and what should happen: the entry (or entries, for two questions) that
//! answers, or `!` when a human must take it. Outcomes:
//! - **correct**: answered with exactly the expected entries;
//! - **partial**: answered with some of the expected entries and nothing else (the rest
//!   escalated: safe, not counted correct);
//! - **wrong**: answered with an entry not expected, or answered what must escalate (the
//!   dangerous one);
//! - **escalated**: no answer (correct when it must escalate, a miss otherwise).

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Deserialize;
use uuid::Uuid;

use super::{
    offline::{self, OfflineOutcome, Params, Turn},
    text::Synonyms,
};
use crate::{
    domain::knowledge::{KnowledgeEntry, KnowledgeKind},
    i18n::Lang,
};

#[derive(Debug, Deserialize)]
pub(crate) struct EvalSet {
    pub(crate) kbs: BTreeMap<String, EvalKb>,
    pub(crate) cases: Vec<EvalCase>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EvalKb {
    pub(crate) lang: String,
    pub(crate) entries: Vec<EvalEntry>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EvalEntry {
    pub(crate) key: String,
    pub(crate) title: String,
    pub(crate) body: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct EvalCase {
    pub(crate) kb: String,
    pub(crate) split: String,
    pub(crate) text: String,
    pub(crate) expect: String,
    #[serde(default)]
    pub(crate) earlier: Vec<String>,
}

/// Counts for one group of cases.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) cases: usize,
    /// Cases an entry should answer.
    pub(crate) answerable: usize,
    pub(crate) correct: usize,
    pub(crate) partial: usize,
    pub(crate) wrong: usize,
    /// Answerable cases that escalated.
    pub(crate) missed: usize,
    /// Must-escalate cases that escalated.
    pub(crate) escalated_ok: usize,
    /// Must-escalate cases with a named reason that escalated with another one.
    pub(crate) wrong_reason: usize,
}

impl Tally {
    pub(crate) fn must_escalate(&self) -> usize {
        self.cases - self.answerable
    }
    /// Answered-correct share of the answerable cases.
    pub(crate) fn correct_rate(&self) -> f64 {
        ratio(self.correct, self.answerable)
    }
    /// Wrong answers over all cases.
    pub(crate) fn wrong_rate(&self) -> f64 {
        ratio(self.wrong, self.cases)
    }
    /// Escalations over all cases.
    pub(crate) fn escalated_rate(&self) -> f64 {
        ratio(self.missed + self.escalated_ok, self.cases)
    }
    fn add(&mut self, o: &Tally) {
        self.cases += o.cases;
        self.answerable += o.answerable;
        self.correct += o.correct;
        self.partial += o.partial;
        self.wrong += o.wrong;
        self.missed += o.missed;
        self.escalated_ok += o.escalated_ok;
        self.wrong_reason += o.wrong_reason;
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// One case's result (for the listing of failures).
#[derive(Clone, Debug)]
pub(crate) struct CaseResult {
    pub(crate) kb: String,
    pub(crate) text: String,
    pub(crate) expect: String,
    pub(crate) got: String,
    pub(crate) verdict: &'static str,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Report {
    pub(crate) total: Tally,
    /// Per knowledge-base size (number of entries).
    pub(crate) by_size: BTreeMap<usize, Tally>,
    pub(crate) failures: Vec<CaseResult>,
}

pub(crate) fn parse(json: &str) -> Result<EvalSet, String> {
    let set: EvalSet = serde_json::from_str(json).map_err(|e| e.to_string())?;
    for c in &set.cases {
        let kb = set
            .kbs
            .get(&c.kb)
            .ok_or_else(|| format!("case {:?}: no knowledge base {:?}", c.text, c.kb))?;
        if !c.expect.starts_with('!') {
            for k in c.expect.split('+') {
                if !kb.entries.iter().any(|e| e.key == k) {
                    return Err(format!("case {:?}: {:?} has no entry {k:?}", c.text, c.kb));
                }
            }
        }
    }
    Ok(set)
}

/// Runs the cases of `split` (all cases when `None`).
pub(crate) fn run(set: &EvalSet, split: Option<&str>) -> Report {
    run_with(set, split, Params::default())
}

/// Tries a grid of decision constants on `split` (the development set: never tune on the
/// held-out one) and prints answered-correct and wrong rates for each.
pub(crate) fn sweep(set: &EvalSet, split: Option<&str>) -> String {
    let mut s =
        String::from("min_coverage margin concept_w absent_w common_w answered-correct  wrong\n");
    for concept_weight in [0.5, 0.75, 1.0] {
        for absent_weight in [0.5, 0.75, 1.0] {
            for common_weight in [0.5, 1.0] {
                for min_coverage in [0.5, 0.6, 0.66, 0.7, 0.75, 0.8, 1.0] {
                    for margin in [0.0, 0.05, 0.1, 0.15, 0.2] {
                        let params = Params {
                            min_coverage,
                            margin,
                            concept_weight,
                            absent_weight,
                            common_weight,
                        };
                        let r = run_with(set, split, params);
                        let _ = writeln!(
                            s,
                            "{min_coverage:>12.2} {margin:>6.2} {concept_weight:>9.2} \
                             {absent_weight:>8.2} {common_weight:>8.2} {:>16.1}% {:>5.1}%",
                            100.0 * r.total.correct_rate(),
                            100.0 * r.total.wrong_rate()
                        );
                    }
                }
            }
        }
    }
    s
}

/// [`run`] with other decision constants.
pub(crate) fn run_with(set: &EvalSet, split: Option<&str>, params: Params) -> Report {
    let kbs: BTreeMap<&str, (Lang, Vec<KnowledgeEntry>, Vec<&str>)> = set
        .kbs
        .iter()
        .map(|(name, kb)| {
            let entries = kb
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| KnowledgeEntry {
                    id: Uuid::from_u128(i as u128 + 1),
                    title: e.title.clone(),
                    body: e.body.clone(),
                    kind: KnowledgeKind::Faq,
                })
                .collect();
            let keys = kb.entries.iter().map(|e| e.key.as_str()).collect();
            (
                name.as_str(),
                (Lang::parse(&kb.lang).unwrap_or(Lang::PtBr), entries, keys),
            )
        })
        .collect();
    let mut report = Report::default();
    for c in set
        .cases
        .iter()
        .filter(|c| split.is_none_or(|s| c.split == s))
    {
        let Some((lang, entries, keys)) = kbs.get(c.kb.as_str()) else {
            continue;
        };
        let outcome = offline::answer_turn_with(
            Turn {
                pending: &c.text,
                earlier: &c.earlier,
            },
            entries,
            *lang,
            &Synonyms::default(),
            params,
        );
        let key_of = |id: &Uuid| keys[(id.as_u128() - 1) as usize];
        let mut t = Tally {
            cases: 1,
            ..Tally::default()
        };
        let must_escalate = c.expect.starts_with('!');
        let expected: Vec<&str> = if must_escalate {
            Vec::new()
        } else {
            c.expect.split('+').collect()
        };
        let (got, verdict) = match &outcome {
            OfflineOutcome::Answer { entry_ids, .. } => {
                let got: Vec<&str> = entry_ids.iter().map(key_of).collect();
                let verdict = if got.iter().any(|g| !expected.contains(g)) {
                    t.wrong = 1;
                    "wrong"
                } else if got.len() == expected.len() {
                    t.correct = 1;
                    "correct"
                } else {
                    t.partial = 1;
                    "partial"
                };
                (got.join("+"), verdict)
            }
            OfflineOutcome::Greeting { .. } => {
                if must_escalate {
                    t.wrong = 1;
                    ("greeting".into(), "wrong")
                } else {
                    t.missed = 1;
                    ("greeting".into(), "missed")
                }
            }
            OfflineOutcome::Escalate { reason } => {
                let got = format!("!{}", reason.code());
                if must_escalate {
                    t.escalated_ok = 1;
                    if c.expect.len() > 1 && c.expect != got {
                        t.wrong_reason = 1;
                        (got, "other reason")
                    } else {
                        (got, "escalated")
                    }
                } else {
                    t.missed = 1;
                    (got, "missed")
                }
            }
        };
        if !must_escalate {
            t.answerable = 1;
        }
        if !matches!(verdict, "correct" | "escalated") {
            report.failures.push(CaseResult {
                kb: c.kb.clone(),
                text: c.text.clone(),
                expect: c.expect.clone(),
                got,
                verdict,
            });
        }
        report.total.add(&t);
        report.by_size.entry(entries.len()).or_default().add(&t);
    }
    report
}

/// The report as a table, then the cases that were not right.
pub(crate) fn render(report: &Report, with_failures: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:>5} {:>10} {:>16} {:>8} {:>8} {:>10} {:>14}",
        "KB size",
        "cases",
        "answerable",
        "answered-correct",
        "partial",
        "wrong",
        "escalated",
        "must-esc. ok"
    );
    let row = |s: &mut String, label: &str, t: &Tally| {
        let _ = writeln!(
            s,
            "{:<10} {:>5} {:>10} {:>9} {:>5.1}% {:>8} {:>3} {:>3.1}% {:>9.1}% {:>8}/{:<5}",
            label,
            t.cases,
            t.answerable,
            t.correct,
            100.0 * t.correct_rate(),
            t.partial,
            t.wrong,
            100.0 * t.wrong_rate(),
            100.0 * t.escalated_rate(),
            t.escalated_ok,
            t.must_escalate(),
        );
    };
    for (size, t) in &report.by_size {
        row(&mut s, &size.to_string(), t);
    }
    row(&mut s, "all", &report.total);
    if report.total.wrong_reason > 0 {
        let _ = writeln!(
            s,
            "{} must-escalate case(s) escalated with another reason than the one labelled",
            report.total.wrong_reason
        );
    }
    if with_failures && !report.failures.is_empty() {
        let _ = writeln!(s, "\nNot right:");
        for f in &report.failures {
            let _ = writeln!(
                s,
                "  [{}] {:<12} {:?}: expected {}, got {}",
                f.verdict, f.kb, f.text, f.expect, f.got
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = include_str!("../../eval/kb/set.json");

    #[test]
    fn the_shipped_set_is_big_enough_and_labelled_as_the_issue_asks() {
        let set = parse(SET).expect("eval/kb/set.json parses");
        let held: Vec<_> = set.cases.iter().filter(|c| c.split == "held-out").collect();
        let dev = set.cases.iter().filter(|c| c.split == "dev").count();
        assert!(set.cases.len() >= 150, "{} cases", set.cases.len());
        assert!(dev > 0 && !held.is_empty());
        let escalate = set
            .cases
            .iter()
            .filter(|c| c.expect.starts_with('!'))
            .count();
        assert!(
            escalate * 10 >= set.cases.len() * 3,
            "{escalate} must escalate"
        );
        let mut sizes: Vec<usize> = set.kbs.values().map(|k| k.entries.len()).collect();
        sizes.sort();
        sizes.dedup();
        assert_eq!(sizes, vec![1, 4, 12, 30]);
        for lang in ["en", "pt-BR"] {
            assert!(set.kbs.values().any(|k| k.lang == lang), "{lang}");
        }
    }

    /// The targets of issue 18, on the held-out cases (never used to tune anything).
    #[test]
    fn held_out_targets_are_met() {
        let set = parse(SET).expect("eval/kb/set.json parses");
        let report = run(&set, Some("held-out"));
        let table = render(&report, true);
        let t = &report.total;
        assert!(
            t.correct_rate() >= 0.85,
            "answered-correct below 85%:\n{table}"
        );
        assert!(t.wrong_rate() <= 0.03, "wrong answers above 3%:\n{table}");
    }

    #[test]
    fn outcomes_are_classified() {
        let set = parse(
            r#"{"kbs": {"one": {"lang": "en", "entries": [
                {"key": "sat", "title": "Saturday opening hours", "body": "On Saturdays we open from 8:00 to 12:30"}]}},
              "cases": [
                {"kb": "one", "split": "dev", "text": "open on saturday?", "expect": "sat"},
                {"kb": "one", "split": "dev", "text": "open on saturday?", "expect": "!"},
                {"kb": "one", "split": "dev", "text": "open on sunday?", "expect": "sat"},
                {"kb": "one", "split": "dev", "text": "open on sunday?", "expect": "!"},
                {"kb": "one", "split": "dev", "text": "my dog was hit by a car", "expect": "!emergency"},
                {"kb": "one", "split": "x", "text": "open on sunday?", "expect": "!"}]}"#,
        )
        .expect("parses");
        let r = run(&set, Some("dev"));
        assert_eq!(
            r.total,
            Tally {
                cases: 5,
                answerable: 2,
                correct: 1,
                partial: 0,
                wrong: 1,
                missed: 1,
                escalated_ok: 2,
                wrong_reason: 0,
            }
        );
        assert_eq!(r.failures.len(), 2);
        assert!(render(&r, true).contains("[wrong]"));
        assert!(
            parse(
                r#"{"kbs": {}, "cases": [{"kb": "x", "split": "dev", "text": "a", "expect": "b"}]}"#
            )
            .is_err()
        );
    }
}
