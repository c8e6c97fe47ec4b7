//! The offline knowledge-base answerer: the default provider. No key, no network, nothing
//! leaves the platform.
//!
//! A customer's turn goes through, in order:
//! 1. **Guard** ([`super::guard`]): emergencies (flagged urgent), medical or diagnostic
//!    questions, complaints and personal-data requests go to a human with that reason,
//!    whatever the knowledge base holds.
//! 2. **Greeting only** ("oiii", "boa tarde!"): a polite "how can we help?".
//! 3. **Questions**: the message is split at question marks, sentence ends and new lines;
//!    each part with something to look up is answered on its own, so "vcs abrem sabado? e
//!    qto custa a limpeza?" gets both entries. A part nothing answers is left to a human and
//!    the draft says so to the reviewer (`partly_answered`). A run-on without punctuation
//!    that no entry answers as a whole is tried again split at "e" / "and".
//! 4. **Follow-ups**: a short part that answers nothing alone ("e no domingo?") is looked up
//!    again with the customer's previous messages as context; its own words must still be
//!    covered, so "e no feriado?" after a Saturday question does not get the Saturday entry.
//!
//! Text goes through [`super::text`] (folding, Snowball stemming, shorthand, greetings,
//! times, tenant synonyms). Words a customer misspells are matched to the knowledge base's
//! vocabulary at edit distance 1 (words of 5 letters or more), or by a long shared prefix
//! (castrar ~ castracao), for part credit.
//!
//! **Deciding to answer does not depend on the size of the knowledge base.** The decision
//! uses the *coverage* of the question's content words by the entry: every content word
//! weighs the same, whether or not it occurs in the knowledge base (a word nobody wrote an
//! entry about is exactly what makes "quanto custa um carro?" unanswerable, while fillers
//! like "qto", "hj", "tomorrow" are stop words and weigh nothing). The best entry answers
//! when its coverage is at least [`MIN_COVERAGE`] and no other entry covering as much comes
//! within [`MARGIN`] of it (a near tie is a question we can't tell apart: a human picks).
//! Ranking uses coverage with title words above body words ([`BODY_CREDIT`]) plus BM25
//! normalised by the best entry's BM25 ([`BM25_MIX`]) to order entries that cover the same
//! words. Both constants were chosen on the development half of `eval/kb/set.json`
//! (`sigmaai kb-eval`), never on the held-out half, which CI checks.
//!
//! The same ranking ([`rank`]) picks the entries an LLM prompt includes
//! ([`super::context`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use super::{
    guard::{self, Concern},
    text::{self, Synonyms},
};
use crate::{domain::knowledge::KnowledgeEntry, i18n::Lang};

/// BM25 parameters (the usual ones).
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// The least share of a question's content words the answering entry must contain.
pub(crate) const MIN_COVERAGE: f32 = 0.66;
/// The least lead of the best entry's score over another entry that covers enough too.
pub(crate) const MARGIN: f32 = 0.2;
/// The weight of a word naming what kind of thing is asked (price, hours, booking…:
/// [`text::CONCEPTS`]) next to a word naming what it is about, which weighs 1: in
/// "quanto custa um tratamento de canal?" the entry with a price and "tratamento" but no
/// "canal" must not cover two thirds of the question.
pub(crate) const CONCEPT_WEIGHT: f32 = 0.5;
/// The weight of a content word no entry contains (even with a typo or shared prefix).
pub(crate) const ABSENT_WEIGHT: f32 = 1.0;
/// The weight of a word more than a third of the entries contain (in a knowledge base of
/// at least 4): "consulta" in a clinic's says little about which entry is meant.
pub(crate) const COMMON_WEIGHT: f32 = 0.5;
/// A content word found only in an entry's body counts this much of a title word.
pub(crate) const BODY_CREDIT: f32 = 0.8;
/// The share of the score that comes from BM25 (normalised by the best entry's).
pub(crate) const BM25_MIX: f32 = 0.15;
/// Credit for a word matched at edit distance 1.
const TYPO_CREDIT: f32 = 0.9;
/// Credit for a word matched only by a long shared prefix.
const PREFIX_CREDIT: f32 = 0.7;
/// A follow-up is a part with at most this many content words.
const FOLLOW_UP_WORDS: usize = 3;

/// The decision's two constants, as one value so `sigmaai kb-eval --sweep` can try others.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Params {
    pub(crate) min_coverage: f32,
    pub(crate) margin: f32,
    pub(crate) concept_weight: f32,
    pub(crate) absent_weight: f32,
    pub(crate) common_weight: f32,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            min_coverage: MIN_COVERAGE,
            margin: MARGIN,
            concept_weight: CONCEPT_WEIGHT,
            absent_weight: ABSENT_WEIGHT,
            common_weight: COMMON_WEIGHT,
        }
    }
}

/// What the offline answerer decided.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OfflineOutcome {
    /// A draft answer from one or more knowledge entries (one per answered question).
    Answer {
        text: String,
        entry_ids: Vec<Uuid>,
        /// The best entry's score and coverage (of the first answered question).
        score: f32,
        coverage: f32,
        /// Questions of the message no entry answered (a human should answer them).
        unanswered: usize,
    },
    /// The message was only a greeting: a polite "how can I help?".
    Greeting { text: String },
    /// No answer: a human should take it, for this reason.
    Escalate { reason: NoAnswer },
}

/// Why the offline answerer did not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoAnswer {
    /// The tenant has no knowledge entries yet.
    NoKnowledge,
    /// Nothing to look up (an emoji, a sticker caption, an empty message).
    NoQuestion,
    /// No entry matches the question well enough.
    NoMatch,
    /// Something the answerer must never answer (see [`guard`]).
    Concern(Concern),
}

impl NoAnswer {
    /// A stable code to store with the escalation.
    pub(crate) fn code(self) -> &'static str {
        match self {
            NoAnswer::NoKnowledge => "no_knowledge",
            NoAnswer::NoQuestion => "no_question",
            NoAnswer::NoMatch => "no_matching_knowledge",
            NoAnswer::Concern(c) => c.code(),
        }
    }

    /// Whether staff should see this first (an emergency).
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn urgent(self) -> bool {
        self == NoAnswer::Concern(Concern::Emergency)
    }
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoAnswer::NoKnowledge => "the knowledge base is empty",
            NoAnswer::NoQuestion => "the message has no question to look up",
            NoAnswer::NoMatch => "no knowledge entry answers this question",
            NoAnswer::Concern(Concern::Emergency) => "an emergency",
            NoAnswer::Concern(Concern::Medical) => "a medical question",
            NoAnswer::Concern(Concern::Complaint) => "a complaint",
            NoAnswer::Concern(Concern::PersonalData) => "a request about personal data",
        })
    }
}

/// A customer's turn: what is pending, and what they wrote before (oldest first).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Turn<'a> {
    pub(crate) pending: &'a str,
    pub(crate) earlier: &'a [String],
}

/// Answers `question` alone from `entries`, in `lang`.
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) fn answer(question: &str, entries: &[KnowledgeEntry], lang: Lang) -> OfflineOutcome {
    answer_turn(
        Turn {
            pending: question,
            earlier: &[],
        },
        entries,
        lang,
        &Synonyms::default(),
    )
}

/// Answers a customer's turn from `entries`, replying in `lang`.
pub(crate) fn answer_turn(
    turn: Turn<'_>,
    entries: &[KnowledgeEntry],
    lang: Lang,
    synonyms: &Synonyms,
) -> OfflineOutcome {
    answer_turn_with(turn, entries, lang, synonyms, Params::default())
}

/// [`answer_turn`] with other decision constants (for tuning on the development set).
pub(crate) fn answer_turn_with(
    turn: Turn<'_>,
    entries: &[KnowledgeEntry],
    lang: Lang,
    synonyms: &Synonyms,
    params: Params,
) -> OfflineOutcome {
    if let Some(c) = guard::check(turn.pending) {
        return OfflineOutcome::Escalate {
            reason: NoAnswer::Concern(c),
        };
    }
    let index = Index::new(entries, synonyms, params);
    let whole = text::analyze(turn.pending, index.lang, synonyms);
    if whole.tokens.is_empty() {
        if whole.greeted {
            return OfflineOutcome::Greeting {
                text: match lang {
                    Lang::En => "Hello! How can we help you?".into(),
                    Lang::PtBr => "Olá! Como podemos ajudar?".into(),
                },
            };
        }
        return OfflineOutcome::Escalate {
            reason: NoAnswer::NoQuestion,
        };
    }
    if entries.is_empty() {
        return OfflineOutcome::Escalate {
            reason: NoAnswer::NoKnowledge,
        };
    }
    let earlier: Vec<text::Token> = turn
        .earlier
        .iter()
        .rev()
        .take(2)
        .flat_map(|m| text::analyze(m, index.lang, synonyms).tokens)
        .collect();
    let parts: Vec<Vec<text::Token>> = split_questions(turn.pending)
        .iter()
        .map(|p| text::analyze(p, index.lang, synonyms).tokens)
        .filter(|t| !t.is_empty())
        .collect();

    // A short question after earlier ones is looked up with them as context first
    // ("e de gato?", "qto fica?"); its own words must still be covered.
    let pick_in_context = |part: &[text::Token], context: &[text::Token]| {
        if part.len() <= FOLLOW_UP_WORDS && !context.is_empty() {
            index.pick(part, context).or_else(|| index.pick(part, &[]))
        } else {
            index.pick(part, &[])
        }
    };
    let mut answered: Vec<Pick> = Vec::new();
    let mut unanswered = 0;
    if parts.len() <= 1 {
        match pick_in_context(&whole.tokens, &earlier) {
            Some(p) => answered.push(p),
            None => {
                // A run-on: "vcs abrem sabado e qto custa a limpeza".
                let runs: Vec<Vec<text::Token>> = split_run_on(turn.pending)
                    .iter()
                    .map(|p| text::analyze(p, index.lang, synonyms).tokens)
                    .filter(|t| !t.is_empty())
                    .collect();
                if runs.len() >= 2 {
                    let mut context = earlier.clone();
                    for r in &runs {
                        match pick_in_context(r, &context) {
                            Some(p) => answered.push(p),
                            None => unanswered += 1,
                        }
                        context = r.clone();
                    }
                    if unanswered > 0 && answered.len() <= 1 {
                        // Split at a word that joined one question ("debito e credito").
                        answered.clear();
                        unanswered = 0;
                    }
                }
            }
        }
    } else {
        // Each question on its own; a short one leans on the part before it.
        let mut context = earlier.clone();
        for part in &parts {
            match pick_in_context(part, &context) {
                Some(p) => answered.push(p),
                None => unanswered += 1,
            }
            context = part.clone();
        }
        if answered.is_empty() {
            // Maybe the parts only make sense together.
            if let Some(p) = index.pick(&whole.tokens, &[]) {
                answered.push(p);
                unanswered = 0;
            }
        }
    }
    let mut seen = HashSet::new();
    answered.retain(|p| seen.insert(p.entry));
    let Some(first) = answered.first() else {
        return OfflineOutcome::Escalate {
            reason: NoAnswer::NoMatch,
        };
    };
    let lead_in = match lang {
        Lang::En => "Thanks for your message! Here is what we can tell you:",
        Lang::PtBr => "Obrigado pela mensagem! Veja o que podemos informar:",
    };
    let mut text = lead_in.to_owned();
    for p in &answered {
        text.push_str("\n\n");
        text.push_str(entries[p.entry].body.trim());
    }
    OfflineOutcome::Answer {
        text,
        entry_ids: answered.iter().map(|p| entries[p.entry].id).collect(),
        score: first.score,
        coverage: first.coverage,
        unanswered,
    }
}

/// Splits a message into its questions: at "?", "!", ".", ";" and new lines (a "." between
/// digits, as in "1.500", does not split).
pub(crate) fn split_questions(message: &str) -> Vec<String> {
    let chars: Vec<char> = message.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if matches!(c, '?' | '!' | ';' | '\n') || (c == '.' && !between_digits) {
            if !cur.trim().is_empty() {
                out.push(cur.trim().to_owned());
            }
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// Splits a run-on at the words that join two questions ("e", "and", "tambem", "also").
fn split_run_on(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for w in message.split_whitespace() {
        let f = text::fold(w.trim_matches(|c: char| !c.is_alphanumeric()));
        if matches!(f.as_str(), "e" | "and" | "tambem" | "tb" | "tbm" | "also") && !cur.is_empty() {
            out.push(cur.join(" "));
            cur.clear();
        } else {
            cur.push(w);
        }
    }
    if !cur.is_empty() {
        out.push(cur.join(" "));
    }
    out
}

/// An entry with its relevance to a question.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ranked<'a> {
    pub(crate) entry: &'a KnowledgeEntry,
    /// Coverage with title words above body words, plus normalised BM25 (0 = nothing in
    /// common; about 1.15 at most).
    pub(crate) score: f32,
    /// The share of the question's content words this entry contains (0..=1).
    pub(crate) coverage: f32,
    /// The customer's words that matched (folded), in question order.
    pub(crate) matched: Vec<String>,
}

/// The entries that share anything with `question`, best first (ties keep the given order).
pub(crate) fn rank<'a>(question: &str, entries: &'a [KnowledgeEntry]) -> Vec<Ranked<'a>> {
    rank_with(question, entries, &Synonyms::default())
}

/// [`rank`] with a tenant's synonyms.
pub(crate) fn rank_with<'a>(
    question: &str,
    entries: &'a [KnowledgeEntry],
    synonyms: &Synonyms,
) -> Vec<Ranked<'a>> {
    let index = Index::new(entries, synonyms, Params::default());
    let tokens = text::analyze(question, index.lang, synonyms).tokens;
    index
        .score(&tokens, &[])
        .into_iter()
        .map(|s| Ranked {
            entry: &entries[s.entry],
            score: s.score,
            coverage: s.coverage,
            matched: s.matched,
        })
        .collect()
}

/// Why the offline answerer would (or would not) answer `question`: for the knowledge
/// page's "test a question" box.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Explanation<'a> {
    pub(crate) outcome: OfflineOutcome,
    /// The best entries (at most 3) with score, coverage and matched words.
    pub(crate) ranked: Vec<Ranked<'a>>,
    /// The question's content terms as the index sees them.
    pub(crate) terms: Vec<String>,
}

pub(crate) fn explain<'a>(
    question: &str,
    entries: &'a [KnowledgeEntry],
    lang: Lang,
    synonyms: &Synonyms,
) -> Explanation<'a> {
    let index = Index::new(entries, synonyms, Params::default());
    let terms = text::analyze(question, index.lang, synonyms).terms();
    let mut ranked = rank_with(question, entries, synonyms);
    ranked.truncate(3);
    Explanation {
        outcome: answer_turn(
            Turn {
                pending: question,
                earlier: &[],
            },
            entries,
            lang,
            synonyms,
        ),
        ranked,
        terms,
    }
}

/// An index-side candidate.
struct Scored {
    entry: usize,
    score: f32,
    coverage: f32,
    matched: Vec<String>,
    bm25: f32,
}

/// The entry chosen for one question.
struct Pick {
    entry: usize,
    score: f32,
    coverage: f32,
}

struct Doc {
    title: HashSet<String>,
    tf: HashMap<String, f32>,
    len: f32,
}

struct Index {
    docs: Vec<Doc>,
    /// Document frequency per term; ordered so lookups are deterministic.
    df: BTreeMap<String, usize>,
    /// Every folded word of the knowledge base with its term (for typo matching).
    words: BTreeMap<String, String>,
    avg_len: f32,
    /// The knowledge base's language (picks the stemmer for entries and questions alike).
    lang: Lang,
    params: Params,
}

/// One content word of a question, with the index terms it may match and their credit.
struct QueryWord {
    word: String,
    weight: f32,
    matches: Vec<(String, f32)>,
    /// Counted in coverage (the question's own words; context words only rank).
    required: bool,
}

impl Index {
    fn new(entries: &[KnowledgeEntry], synonyms: &Synonyms, params: Params) -> Index {
        let all: String = entries
            .iter()
            .flat_map(|e| [e.title.as_str(), " ", e.body.as_str(), " "])
            .collect();
        let lang = text::guess_lang(&all, Lang::PtBr);
        let mut df: BTreeMap<String, usize> = BTreeMap::new();
        let mut words = BTreeMap::new();
        let docs: Vec<Doc> = entries
            .iter()
            .map(|e| {
                let title = text::analyze(&e.title, lang, synonyms).tokens;
                let body = text::analyze(&e.body, lang, synonyms).tokens;
                let mut tf: HashMap<String, f32> = HashMap::new();
                // Titles say what an entry is about: their words count twice.
                for t in title.iter().chain(&title).chain(&body) {
                    *tf.entry(t.term.clone()).or_default() += 1.0;
                    words
                        .entry(t.word.clone())
                        .or_insert_with(|| t.term.clone());
                }
                for t in tf.keys() {
                    *df.entry(t.clone()).or_default() += 1;
                }
                Doc {
                    title: title.iter().map(|t| t.term.clone()).collect(),
                    len: (title.len() * 2 + body.len()) as f32,
                    tf,
                }
            })
            .collect();
        let avg_len = if docs.is_empty() {
            1.0
        } else {
            (docs.iter().map(|d| d.len).sum::<f32>() / docs.len() as f32).max(1.0)
        };
        Index {
            docs,
            df,
            words,
            avg_len,
            lang,
            params,
        }
    }

    fn idf(&self, term: &str) -> f32 {
        let n = self.docs.len() as f32;
        let df = self.df.get(term).copied().unwrap_or(0) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    fn bm25(&self, term: &str, doc: &Doc) -> f32 {
        let Some(&tf) = doc.tf.get(term) else {
            return 0.0;
        };
        let norm = K1 * (1.0 - B + B * doc.len / self.avg_len);
        self.idf(term) * tf * (K1 + 1.0) / (tf + norm)
    }

    /// The index terms a question word may match: itself, else the knowledge base's words
    /// at edit distance 1, else words sharing a long prefix.
    fn resolve(&self, t: &text::Token, required: bool) -> QueryWord {
        let matches = if self.df.contains_key(&t.term) {
            vec![(t.term.clone(), 1.0)]
        } else {
            let mut m: Vec<(String, f32)> = Vec::new();
            if t.word.chars().count() >= 5 && !t.word.chars().any(|c| c.is_ascii_digit()) {
                for (w, term) in &self.words {
                    if w.chars().count() >= 5 && within_one_edit(&t.word, w) {
                        m.push((term.clone(), TYPO_CREDIT));
                    }
                }
            }
            if m.is_empty() {
                for (w, term) in &self.words {
                    if shares_long_prefix(&t.word, w) {
                        m.push((term.clone(), PREFIX_CREDIT));
                    }
                }
            }
            m.sort_by(|a, b| a.0.cmp(&b.0));
            m.dedup_by(|a, b| a.0 == b.0);
            m
        };
        let n = self.docs.len();
        let df = matches
            .iter()
            .filter_map(|(t, _)| self.df.get(t))
            .copied()
            .max()
            .unwrap_or(0);
        let mut weight = if text::CONCEPTS.contains(&t.term.as_str()) {
            self.params.concept_weight
        } else {
            1.0
        };
        if matches.is_empty() {
            weight *= self.params.absent_weight;
        } else if n >= 4 && df * 3 > n {
            weight *= self.params.common_weight;
        }
        QueryWord {
            word: t.word.clone(),
            weight,
            matches,
            required,
        }
    }

    /// Every entry sharing a required word with the question, best first.
    fn score(&self, tokens: &[text::Token], context: &[text::Token]) -> Vec<Scored> {
        let mut seen = HashSet::new();
        let mut query: Vec<QueryWord> = Vec::new();
        for t in tokens {
            // A bare number ("3 anos", "sala 12") ranks but is not required: ages and
            // counts are rarely what an entry is about. Times ("8h") and "12x" are.
            let bare_number = t.term.chars().all(|c| c.is_ascii_digit());
            if seen.insert(t.term.clone()) {
                query.push(self.resolve(t, !bare_number));
            }
        }
        for t in context {
            if seen.insert(t.term.clone()) {
                query.push(self.resolve(t, false));
            }
        }
        let required: f32 = query.iter().filter(|q| q.required).map(|q| q.weight).sum();
        let all: f32 = query.iter().map(|q| q.weight).sum();
        if required == 0.0 {
            return Vec::new();
        }
        let mut out: Vec<Scored> = self
            .docs
            .iter()
            .enumerate()
            .filter_map(|(i, doc)| {
                let mut covered = 0.0;
                let mut strength = 0.0;
                let mut bm25 = 0.0;
                let mut matched = Vec::new();
                for q in &query {
                    let best = q
                        .matches
                        .iter()
                        .filter(|(t, _)| doc.tf.contains_key(t))
                        .map(|(t, c)| {
                            let place = if doc.title.contains(t) {
                                1.0
                            } else {
                                BODY_CREDIT
                            };
                            (c * place, *c, c * self.bm25(t, doc))
                        })
                        .fold(
                            (0.0f32, 0.0f32, 0.0f32),
                            |a, b| {
                                if b.0 > a.0 { b } else { a }
                            },
                        );
                    if best.1 > 0.0 {
                        if q.required {
                            covered += q.weight * best.1;
                            matched.push(q.word.clone());
                        }
                        strength += q.weight * best.0;
                        bm25 += best.2;
                    }
                }
                (covered > 0.0).then_some(Scored {
                    entry: i,
                    score: strength / all,
                    coverage: covered / required,
                    matched,
                    bm25,
                })
            })
            .collect();
        // Normalised BM25 orders entries that cover the same words.
        let max = out.iter().map(|s| s.bm25).fold(0.0f32, f32::max);
        if max > 0.0 {
            for s in &mut out {
                s.score += BM25_MIX * s.bm25 / max;
            }
        }
        // Stable sort: equal scores keep the tenant's order, so results are deterministic.
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }

    /// The entry that answers `tokens` (with `context` from earlier messages), if one does
    /// clearly enough.
    fn pick(&self, tokens: &[text::Token], context: &[text::Token]) -> Option<Pick> {
        let ranked = self.score(tokens, context);
        let best = ranked.first()?;
        if best.coverage < self.params.min_coverage {
            return None;
        }
        if let Some(second) = ranked.get(1)
            && second.coverage >= self.params.min_coverage
            && best.score - second.score < self.params.margin
        {
            return None; // two entries answer about as well: a human picks
        }
        Some(Pick {
            entry: best.entry,
            score: best.score,
            coverage: best.coverage,
        })
    }
}

/// Whether two words are at most one edit apart (insert, delete, substitute, or swap two
/// neighbours).
fn within_one_edit(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a == b {
        return true;
    }
    let (la, lb) = (a.len(), b.len());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if la == lb {
        // One substitution, or one swap of neighbours.
        let rest_equal = |from: usize| a[from..] == b[from..];
        return rest_equal(prefix + 1)
            || (prefix + 1 < la
                && a[prefix] == b[prefix + 1]
                && a[prefix + 1] == b[prefix]
                && rest_equal(prefix + 2));
    }
    let (long, short) = if la > lb { (&a, &b) } else { (&b, &a) };
    long[prefix + 1..] == short[prefix..]
}

fn shares_long_prefix(a: &str, b: &str) -> bool {
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let shorter = a.chars().count().min(b.chars().count());
    common >= 6 && common * 4 >= shorter * 3
}

/// Lowercases and removes accents (and other combining marks).
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) fn fold(text: &str) -> String {
    text::fold(text)
}

/// The index terms of a text (in the language it seems to be in).
#[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
pub(crate) fn terms(text: &str) -> Vec<String> {
    text::analyze(
        text,
        text::guess_lang(text, Lang::PtBr),
        &Synonyms::default(),
    )
    .terms()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::knowledge::KnowledgeKind;

    fn entry(n: u128, kind: KnowledgeKind, title: &str, body: &str) -> KnowledgeEntry {
        KnowledgeEntry {
            id: Uuid::from_u128(n),
            title: title.into(),
            body: body.into(),
            kind,
        }
    }

    /// A dental clinic in Curitiba, as its staff would write it.
    pub(crate) fn clinica_sorriso() -> Vec<KnowledgeEntry> {
        use KnowledgeKind::*;
        vec![
            entry(
                1,
                Hours,
                "Horário de funcionamento",
                "Atendemos de segunda a sexta, das 8h às 18h, e aos sábados das 8h às 12h. Não abrimos aos domingos e feriados.",
            ),
            entry(
                2,
                Price,
                "Valor da consulta",
                "A consulta de avaliação custa R$ 150,00. O valor é abatido se você fizer o tratamento conosco.",
            ),
            entry(
                3,
                Price,
                "Preço do clareamento dental",
                "O clareamento dental a laser custa R$ 900,00, em até 6 vezes sem juros no cartão.",
            ),
            entry(
                4,
                Faq,
                "Convênios aceitos",
                "Aceitamos os convênios Unimed Odonto, Amil Dental e SulAmérica. Traga sua carteirinha e um documento com foto.",
            ),
            entry(
                5,
                Faq,
                "Como agendar uma consulta",
                "Você pode agendar pelo WhatsApp informando nome completo e o melhor dia e horário. Nossa equipe confirma o agendamento em até 1 hora.",
            ),
            entry(
                6,
                Other,
                "Endereço e estacionamento",
                "Estamos na Rua das Flores, 123, sala 45, Centro, Curitiba. Há estacionamento conveniado no prédio ao lado.",
            ),
            entry(
                7,
                Service,
                "Limpeza e profilaxia",
                "A limpeza remove tártaro e placa bacteriana e dura cerca de 40 minutos. Recomendamos a cada 6 meses.",
            ),
            entry(
                8,
                Faq,
                "Médicos e especialidades",
                "Nossa equipe tem dentistas clínicos gerais, ortodontistas e uma médica estomatologista. A Dra. Ana Souza é a responsável técnica.",
            ),
            entry(
                9,
                Faq,
                "Formas de pagamento",
                "Aceitamos Pix, dinheiro e cartões de débito e crédito. Parcelamos tratamentos em até 10 vezes.",
            ),
        ]
    }

    /// A physiotherapy clinic in Lisbon writing in English.
    pub(crate) fn riverside_physio() -> Vec<KnowledgeEntry> {
        use KnowledgeKind::*;
        vec![
            entry(
                101,
                Hours,
                "Opening hours",
                "We are open Monday to Friday from 9am to 7pm and on Saturdays from 9am to 1pm.",
            ),
            entry(
                102,
                Price,
                "Prices",
                "A first assessment costs €60. Follow-up sessions cost €45. Packs of 5 sessions cost €200.",
            ),
            entry(
                103,
                Service,
                "Sports injuries",
                "We treat sprains, tendinitis and muscle tears, with a personalised exercise plan after each session.",
            ),
            entry(
                104,
                Faq,
                "Insurance",
                "We work with Médis, Multicare and AdvanceCare. Bring your insurance card to the first session.",
            ),
            entry(
                105,
                Faq,
                "Booking an appointment",
                "Send us your full name and preferred day and time, and we will confirm your appointment within the hour.",
            ),
            entry(
                106,
                Other,
                "Location and parking",
                "We are at Rua Augusta 200, 2nd floor, Lisbon. Paid parking is available across the street.",
            ),
        ]
    }

    fn answered_with(question: &str, kb: &[KnowledgeEntry], lang: Lang) -> u128 {
        match answer(question, kb, lang) {
            OfflineOutcome::Answer { entry_ids, .. } => {
                assert_eq!(entry_ids.len(), 1, "{question:?}: {entry_ids:?}");
                entry_ids[0].as_u128()
            }
            other => panic!(
                "{question:?} was not answered: {other:?} (ranking: {:?})",
                rank(question, kb)
                    .iter()
                    .map(|r| (r.entry.id.as_u128(), r.score, r.coverage))
                    .collect::<Vec<_>>()
            ),
        }
    }

    fn escalates(question: &str, kb: &[KnowledgeEntry]) -> NoAnswer {
        match answer(question, kb, Lang::PtBr) {
            OfflineOutcome::Escalate { reason } => reason,
            other => panic!("{question:?} should escalate, got {other:?}"),
        }
    }

    #[test]
    fn portuguese_questions_get_the_right_entry() {
        let kb = clinica_sorriso();
        let cases = [
            ("Qual o horário de funcionamento?", 1),
            ("Vocês abrem no sábado?", 1),
            ("que horas vcs fecham?", 1),
            ("Quanto custa uma consulta?", 2),
            ("qual o valor das consultas", 2),
            ("Quanto custa o clareamento?", 3),
            ("Vocês atendem por convênio? Tenho Unimed", 4),
            ("Como faço para marcar uma consulta?", 5),
            ("Onde fica a clínica?", 6),
            ("tem estacionamento?", 6),
            ("Quanto tempo demora a limpeza?", 7),
            ("Vocês atendem sábado?", 1),
            ("tem medico?", 8),
            ("Quais as formas de pagamento? Aceita pix?", 9),
            ("posso parcelar no cartão?", 9),
        ];
        for (q, id) in cases {
            assert_eq!(answered_with(q, &kb, Lang::PtBr), id, "{q}");
        }
    }

    #[test]
    fn english_questions_get_the_right_entry() {
        let kb = riverside_physio();
        let cases = [
            ("What are your opening hours?", 101),
            ("Are you open on Saturdays?", 101),
            ("How much is a first assessment?", 102),
            ("what are your prices", 102),
            ("Do you treat sports injuries like a sprained ankle?", 103),
            ("Do you accept Multicare insurance?", 104),
            ("How can I book an appointment?", 105),
            ("Where are you located?", 106),
            ("Is there parking?", 106),
        ];
        for (q, id) in cases {
            assert_eq!(answered_with(q, &kb, Lang::En), id, "{q}");
        }
    }

    #[test]
    fn answers_quote_the_entry_with_a_lead_in_in_the_tenants_language() {
        let kb = clinica_sorriso();
        let OfflineOutcome::Answer {
            text, entry_ids, ..
        } = answer("Quanto custa o clareamento?", &kb, Lang::PtBr)
        else {
            panic!()
        };
        assert_eq!(entry_ids, vec![Uuid::from_u128(3)]);
        assert_eq!(
            text,
            "Obrigado pela mensagem! Veja o que podemos informar:\n\n\
             O clareamento dental a laser custa R$ 900,00, em até 6 vezes sem juros no cartão."
        );
        let OfflineOutcome::Answer { text, .. } =
            answer("opening hours?", &riverside_physio(), Lang::En)
        else {
            panic!()
        };
        assert!(
            text.starts_with(
                "Thanks for your message! Here is what we can tell you:\n\nWe are open"
            )
        );
    }

    #[test]
    fn unrelated_questions_escalate() {
        let pt = clinica_sorriso();
        let en = riverside_physio();
        for q in [
            "Qual é a capital da França?",
            "Você gosta de futebol?",
            "Quanto custa um carro usado?",
            "Quanto custa um tratamento de canal?",
        ] {
            assert_eq!(escalates(q, &pt), NoAnswer::NoMatch, "{q}");
        }
        for q in [
            "What's the capital of France?",
            "What is the price of a used car?",
            "Can you recommend a good restaurant?",
        ] {
            assert_eq!(escalates(q, &en), NoAnswer::NoMatch, "{q}");
        }
    }

    #[test]
    fn what_must_not_be_answered_escalates_with_its_reason() {
        let pt = clinica_sorriso();
        let cases = [
            (
                "Minha filha está com febre e dor de ouvido desde ontem, o que eu faço?",
                Concern::Medical,
            ),
            ("meu cachorro foi atropelado", Concern::Emergency),
            ("estou com muita dor, vcs abrem hj?", Concern::Emergency),
            ("quero reclamar do atendimento, pessimo", Concern::Complaint),
            ("quero que apaguem meus dados", Concern::PersonalData),
        ];
        for (q, c) in cases {
            assert_eq!(escalates(q, &pt), NoAnswer::Concern(c), "{q}");
        }
        assert!(NoAnswer::Concern(Concern::Emergency).urgent());
        assert!(!NoAnswer::Concern(Concern::Medical).urgent());
        assert!(!NoAnswer::NoMatch.urgent());
    }

    /// Issue 18's first case: one entry, and the question a new tenant tries first.
    #[test]
    fn one_entry_answers_its_question() {
        let kb = vec![entry(
            1,
            KnowledgeKind::Hours,
            "Saturday opening hours",
            "On Saturdays we open from 8:00 to 12:30",
        )];
        assert_eq!(
            answered_with("Hi! what time do you open on saturday?", &kb, Lang::En),
            1
        );
        assert_eq!(answered_with("r u open sat?", &kb, Lang::En), 1);
        // Near-misses: the words asked about are not in the entry.
        for q in [
            "are you open on holidays?",
            "do you open on sunday?",
            "what time do you open on christmas day?",
        ] {
            assert_eq!(escalates(q, &kb), NoAnswer::NoMatch, "{q}");
        }
    }

    #[test]
    fn two_questions_get_two_entries_and_a_part_nobody_answers_is_counted() {
        let kb = clinica_sorriso();
        let OfflineOutcome::Answer {
            entry_ids,
            unanswered,
            ..
        } = answer(
            "oi boa tarde! vcs abrem sabado? e qto custa o clareamento?",
            &kb,
            Lang::PtBr,
        )
        else {
            panic!("not answered")
        };
        assert_eq!(entry_ids, vec![Uuid::from_u128(1), Uuid::from_u128(3)]);
        assert_eq!(unanswered, 0);
        // A run-on, without punctuation.
        let OfflineOutcome::Answer { entry_ids, .. } = answer(
            "vcs abrem sabado e aceitam convenio unimed",
            &kb,
            Lang::PtBr,
        ) else {
            panic!("run-on not answered")
        };
        assert_eq!(entry_ids, vec![Uuid::from_u128(1), Uuid::from_u128(4)]);
        let OfflineOutcome::Answer {
            entry_ids,
            unanswered,
            ..
        } = answer(
            "Quanto custa o clareamento? Vocês fazem implante de titânio?",
            &kb,
            Lang::PtBr,
        )
        else {
            panic!("not answered")
        };
        assert_eq!(entry_ids, vec![Uuid::from_u128(3)]);
        assert_eq!(unanswered, 1);
    }

    #[test]
    fn follow_ups_use_the_earlier_messages() {
        let kb = clinica_sorriso();
        let earlier = vec!["vcs atendem sabado?".to_owned()];
        let turn = Turn {
            pending: "e no domingo?",
            earlier: &earlier,
        };
        let OfflineOutcome::Answer { entry_ids, .. } =
            answer_turn(turn, &kb, Lang::PtBr, &Synonyms::default())
        else {
            panic!("follow-up not answered")
        };
        assert_eq!(entry_ids, vec![Uuid::from_u128(1)]);
        // With one Saturday entry, Sunday is a near-miss even in context.
        let one = vec![entry(
            1,
            KnowledgeKind::Hours,
            "Horário de sábado",
            "Aos sábados abrimos das 8h às 12h30.",
        )];
        assert_eq!(
            answer_turn(turn, &one, Lang::PtBr, &Synonyms::default()),
            OfflineOutcome::Escalate {
                reason: NoAnswer::NoMatch
            }
        );
    }

    #[test]
    fn typos_match_the_knowledge_base_vocabulary() {
        let kb = clinica_sorriso();
        assert_eq!(answered_with("qto custa o clareameto", &kb, Lang::PtBr), 3);
        assert_eq!(answered_with("tem estacionamnto?", &kb, Lang::PtBr), 6);
    }

    #[test]
    fn tenant_synonyms_reach_the_entry() {
        let kb = clinica_sorriso();
        let s = Synonyms::parse("convênio = seguro odontológico");
        let turn = Turn {
            pending: "aceitam seguro odontologico?",
            earlier: &[],
        };
        let OfflineOutcome::Answer { entry_ids, .. } = answer_turn(turn, &kb, Lang::PtBr, &s)
        else {
            panic!("synonym not used")
        };
        assert_eq!(entry_ids, vec![Uuid::from_u128(4)]);
    }

    #[test]
    fn explanations_show_the_entry_score_and_matched_words() {
        let kb = clinica_sorriso();
        let e = explain(
            "qto custa o clareamento?",
            &kb,
            Lang::PtBr,
            &Synonyms::default(),
        );
        assert_eq!(e.ranked[0].entry.id, Uuid::from_u128(3));
        assert_eq!(e.ranked[0].matched, vec!["quanto", "clareamento"]);
        assert!(matches!(e.outcome, OfflineOutcome::Answer { .. }));
    }

    #[test]
    fn greetings_alone_get_a_polite_question_back() {
        let kb = clinica_sorriso();
        for g in [
            "Oi",
            "Olá, bom dia!",
            "boa tarde",
            "oi tudo bem?",
            "Hello there",
            "hi!",
        ] {
            assert!(
                matches!(answer(g, &kb, Lang::PtBr), OfflineOutcome::Greeting { .. }),
                "{g}"
            );
        }
        assert_eq!(
            answer("Olá!", &kb, Lang::PtBr),
            OfflineOutcome::Greeting {
                text: "Olá! Como podemos ajudar?".into()
            }
        );
        assert_eq!(
            answer("Good morning", &kb, Lang::En),
            OfflineOutcome::Greeting {
                text: "Hello! How can we help you?".into()
            }
        );
        // A greeting with a question is the question.
        assert_eq!(
            answered_with("Oi, bom dia! Vocês abrem sábado?", &kb, Lang::PtBr),
            1
        );
    }

    #[test]
    fn nothing_to_look_up_or_nothing_to_look_in_escalates() {
        assert_eq!(escalates("👍", &clinica_sorriso()), NoAnswer::NoQuestion);
        assert_eq!(escalates("?!", &clinica_sorriso()), NoAnswer::NoQuestion);
        assert_eq!(escalates("Qual o horário?", &[]), NoAnswer::NoKnowledge);
    }

    #[test]
    fn folding_stemming_and_synonyms() {
        assert_eq!(fold("Médico ÀS Informações Ç"), "medico as informacoes c");
        assert_eq!(terms("consultas"), terms("consulta"));
        assert_eq!(terms("Médicos"), terms("medico"));
        assert_eq!(terms("avaliações"), terms("avaliacao"));
        assert_eq!(terms("exames"), terms("exame"));
        assert_eq!(terms("prices"), terms("price"));
        assert_eq!(terms("Quanto custa?"), vec!["preco"]);
        assert_eq!(terms("how much is it"), vec!["preco"]);
        assert_eq!(terms("R$ 150"), vec!["preco", "150"]);
        assert!(shares_long_prefix("castrar", "castracao"));
        assert!(within_one_edit("sabado", "sabdo"));
        assert!(within_one_edit("limpeza", "limpesa"));
        assert!(within_one_edit("consulta", "cosnulta"));
        assert!(!within_one_edit("consulta", "conserto"));
        assert!(!shares_long_prefix("consulta", "conserto"));
    }

    #[test]
    fn ranking_is_deterministic_and_ties_keep_order() {
        let kb = clinica_sorriso();
        let a = rank("preço", &kb);
        let b = rank("preço", &kb);
        assert_eq!(a, b);
        assert!(a.len() >= 2, "both price entries match");
        let twins = vec![
            entry(1, KnowledgeKind::Faq, "Pix", "Aceitamos Pix."),
            entry(2, KnowledgeKind::Faq, "Pix", "Aceitamos Pix."),
        ];
        let r = rank("pix", &twins);
        assert_eq!(r[0].entry.id, Uuid::from_u128(1));
        assert_eq!(r[0].score, r[1].score);
    }
}
