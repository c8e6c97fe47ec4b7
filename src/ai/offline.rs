//! The offline knowledge-base answerer: the default provider. No key, no network, nothing
//! leaves the platform.
//!
//! It ranks the tenant's knowledge entries against the customer's question with BM25 (title
//! words count twice) and answers with the best entry's text when the match is good enough;
//! otherwise it says so and the conversation goes to a human. The same ranking picks the
//! entries an LLM prompt includes ([`rank`], used by [`super::context`]).
//!
//! Text is lowercased and accent-folded ("Médico" = "medico"), split into words, stripped of
//! Portuguese and English stop words (and words every clinic question shares, like
//! "clínica"), and lightly stemmed (plurals: consultas → consulta, informações → informacao,
//! prices → price; a final "e": exames → exam). A small synonym table maps the ways people
//! ask about prices, hours, booking, location, insurance and payment onto one word each,
//! across both languages ("quanto custa", "valor", "how much", "price" → one term). Query
//! words absent from the knowledge base may still match a word sharing a long prefix
//! (agendar ~ agendamento) for half credit.
//!
//! "Good enough" means both: a BM25 score of at least [`MIN_SCORE`], and the matched words
//! carrying at least [`MIN_COVERAGE`] of the question's weight (each word weighted by its
//! rarity, unknown words weighing most). So "what's the price of a car?" matches "price" but
//! not "car", and escalates instead of quoting the clinic's prices.
//!
//! Greetings alone ("oi", "bom dia", "hello there") get a polite "how can I help?" rather than
//! an escalation: answering them costs staff nothing, and escalating every "oi" would flood
//! the review queue. A greeting followed by a question is answered as the question.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use crate::{domain::knowledge::KnowledgeEntry, i18n::Lang};

/// BM25 parameters (the usual ones).
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// The least BM25 score an answer needs.
pub const MIN_SCORE: f32 = 1.0;
/// The least share of the question's (rarity-weighted) words the best entry must match.
pub const MIN_COVERAGE: f32 = 0.5;
/// Credit for a word matched only by a shared prefix.
const PREFIX_CREDIT: f32 = 0.5;

/// What the offline answerer decided.
#[derive(Clone, Debug, PartialEq)]
pub enum OfflineOutcome {
    /// A draft answer taken from one knowledge entry.
    Answer {
        text: String,
        entry_id: Uuid,
        score: f32,
        coverage: f32,
    },
    /// The message was only a greeting: a polite "how can I help?".
    Greeting { text: String },
    /// No answer: a human should take it, for this reason.
    Escalate { reason: NoAnswer },
}

/// Why the offline answerer did not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// The tenant has no knowledge entries yet.
    NoKnowledge,
    /// Nothing to look up (an emoji, a sticker caption, an empty message).
    NoQuestion,
    /// No entry matches the question well enough.
    NoMatch,
}

impl NoAnswer {
    /// A stable code to store with the escalation.
    pub fn code(self) -> &'static str {
        match self {
            NoAnswer::NoKnowledge => "no_knowledge",
            NoAnswer::NoQuestion => "no_question",
            NoAnswer::NoMatch => "no_matching_knowledge",
        }
    }
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoAnswer::NoKnowledge => "the knowledge base is empty",
            NoAnswer::NoQuestion => "the message has no question to look up",
            NoAnswer::NoMatch => "no knowledge entry answers this question",
        })
    }
}

/// Answers `question` from `entries`, in the tenant's language `lang`.
pub fn answer(question: &str, entries: &[KnowledgeEntry], lang: Lang) -> OfflineOutcome {
    if is_greeting_only(question) {
        return OfflineOutcome::Greeting {
            text: match lang {
                Lang::En => "Hello! How can we help you?".into(),
                Lang::PtBr => "Olá! Como podemos ajudar?".into(),
            },
        };
    }
    if terms(question).is_empty() {
        return OfflineOutcome::Escalate {
            reason: NoAnswer::NoQuestion,
        };
    }
    if entries.is_empty() {
        return OfflineOutcome::Escalate {
            reason: NoAnswer::NoKnowledge,
        };
    }
    match rank(question, entries).into_iter().next() {
        Some(best) if best.score >= MIN_SCORE && best.coverage >= MIN_COVERAGE => {
            let lead_in = match lang {
                Lang::En => "Thanks for your message! Here is what we can tell you:",
                Lang::PtBr => "Obrigado pela mensagem! Veja o que podemos informar:",
            };
            OfflineOutcome::Answer {
                text: format!("{lead_in}\n\n{}", best.entry.body.trim()),
                entry_id: best.entry.id,
                score: best.score,
                coverage: best.coverage,
            }
        }
        _ => OfflineOutcome::Escalate {
            reason: NoAnswer::NoMatch,
        },
    }
}

/// An entry with its relevance to a question.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranked<'a> {
    pub entry: &'a KnowledgeEntry,
    /// BM25 score (0 = nothing in common).
    pub score: f32,
    /// The share of the question's rarity-weighted words this entry matches (0..=1).
    pub coverage: f32,
}

/// The entries that share anything with `question`, best first (ties keep the given order).
pub fn rank<'a>(question: &str, entries: &'a [KnowledgeEntry]) -> Vec<Ranked<'a>> {
    let index = Index::new(entries);
    let mut query = terms(question);
    let mut seen = HashSet::new();
    query.retain(|t| seen.insert(t.clone()));
    if query.is_empty() {
        return Vec::new();
    }
    // For each query word: the index words it matches, with their credit.
    let expanded: Vec<(f32, Vec<(&str, f32)>)> = query
        .iter()
        .map(|q| {
            let weight = index.idf(q);
            let matches = if index.df.contains_key(q.as_str()) {
                vec![(q.as_str(), 1.0)]
            } else {
                index
                    .df
                    .keys()
                    .filter(|t| shares_long_prefix(q, t))
                    .map(|t| (t.as_str(), PREFIX_CREDIT))
                    .collect()
            };
            (weight, matches)
        })
        .collect();
    let total_weight: f32 = expanded.iter().map(|(w, _)| w).sum();

    let mut ranked: Vec<Ranked<'a>> = entries
        .iter()
        .zip(&index.docs)
        .filter_map(|(entry, doc)| {
            let mut score = 0.0;
            let mut covered = 0.0;
            for (weight, matches) in &expanded {
                let best = matches
                    .iter()
                    .map(|(t, credit)| credit * index.bm25(t, doc))
                    .fold(0.0f32, f32::max);
                if best > 0.0 {
                    score += best;
                    let credit = matches
                        .iter()
                        .filter(|(t, _)| doc.tf.contains_key(*t))
                        .map(|(_, c)| *c)
                        .fold(0.0f32, f32::max);
                    covered += weight * credit;
                }
            }
            (score > 0.0).then(|| Ranked {
                entry,
                score,
                coverage: if total_weight > 0.0 {
                    covered / total_weight
                } else {
                    0.0
                },
            })
        })
        .collect();
    // Stable sort: equal scores keep the tenant's order, so results are deterministic.
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    ranked
}

struct Doc {
    tf: HashMap<String, f32>,
    len: f32,
}

struct Index {
    docs: Vec<Doc>,
    /// Document frequency per word; ordered so prefix lookups are deterministic.
    df: BTreeMap<String, usize>,
    avg_len: f32,
}

impl Index {
    fn new(entries: &[KnowledgeEntry]) -> Index {
        let mut df: BTreeMap<String, usize> = BTreeMap::new();
        let docs: Vec<Doc> = entries
            .iter()
            .map(|e| {
                let title = terms(&e.title);
                let body = terms(&e.body);
                let mut tf: HashMap<String, f32> = HashMap::new();
                // Titles say what an entry is about: their words count twice.
                for t in title.iter().chain(&title).chain(&body) {
                    *tf.entry(t.clone()).or_default() += 1.0;
                }
                for t in tf.keys() {
                    *df.entry(t.clone()).or_default() += 1;
                }
                Doc {
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
        Index { docs, df, avg_len }
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
}

fn shares_long_prefix(a: &str, b: &str) -> bool {
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let shorter = a.chars().count().min(b.chars().count());
    common >= 6 && common * 4 >= shorter * 3
}

/// Lowercases and removes accents (and other diacritics of Latin letters).
pub fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            'ý' | 'ÿ' => 'y',
            other => other,
        })
        .collect()
}

/// Folded words, before stop words and stemming.
fn words(text: &str) -> Vec<String> {
    fold(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The index terms of a text: folded, stop words removed, stemmed, synonyms merged.
pub fn terms(text: &str) -> Vec<String> {
    let ws = words(text);
    let mut out = Vec::with_capacity(ws.len());
    for (i, w) in ws.iter().enumerate() {
        // "how much" asks for a price even though both words are stop words.
        if w == "much" && i > 0 && ws[i - 1] == "how" {
            out.push("preco".to_owned());
            continue;
        }
        if STOP_WORDS.contains(&w.as_str()) || (w.len() < 2 && !w.chars().all(char::is_numeric)) {
            continue;
        }
        if let Some(canon) = synonym(w) {
            out.push(canon.to_owned());
            continue;
        }
        let stemmed = stem(w);
        if STOP_WORDS.contains(&stemmed.as_str()) {
            continue;
        }
        out.push(synonym(&stemmed).map(str::to_owned).unwrap_or(stemmed));
    }
    out
}

/// Plural and final-"e" stripping for Portuguese and English. Crude on purpose: it only has
/// to map the forms a question and an entry use onto the same word.
fn stem(word: &str) -> String {
    let w = word;
    if w.chars().count() <= 3 || w.chars().any(|c| c.is_ascii_digit()) {
        return w.to_owned();
    }
    let mut s = if let Some(base) = w.strip_suffix("oes").or_else(|| w.strip_suffix("aes")) {
        format!("{base}ao")
    } else if let Some(base) = w.strip_suffix("ais") {
        format!("{base}al")
    } else if let Some(base) = w.strip_suffix("eis") {
        format!("{base}el")
    } else if let Some(base) = w.strip_suffix("ies") {
        format!("{base}y")
    } else if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        w[..w.len() - 1].to_owned()
    } else {
        w.to_owned()
    };
    if s.chars().count() > 3 && s.ends_with('e') {
        s.pop();
    }
    s
}

fn synonym(word: &str) -> Option<&'static str> {
    SYNONYMS
        .iter()
        .find(|(_, words)| words.contains(&word))
        .map(|(canon, _)| *canon)
}

/// Ways of asking about the same thing, folded, mapped onto one term.
const SYNONYMS: &[(&str, &[&str])] = &[
    (
        "preco",
        &[
            "preco", "precos", "valor", "valores", "custa", "custam", "custo", "custos", "cobra",
            "cobram", "price", "prices", "cost", "costs", "fee", "fees", "pricing",
        ],
    ),
    (
        "horario",
        &[
            "horario",
            "horarios",
            "hora",
            "horas",
            "abre",
            "abrem",
            "abrimos",
            "aberto",
            "aberta",
            "abertos",
            "funciona",
            "funcionam",
            "funcionamento",
            "fecha",
            "fecham",
            "expediente",
            "atendimento",
            "hour",
            "hours",
            "open",
            "opens",
            "opening",
            "close",
            "closes",
            "closing",
        ],
    ),
    (
        "agendar",
        &[
            "agendar",
            "agenda",
            "agendamento",
            "marcar",
            "marco",
            "marcacao",
            "book",
            "booking",
            "schedule",
            "appointment",
            "appointments",
        ],
    ),
    (
        "endereco",
        &[
            "endereco",
            "enderecos",
            "localizacao",
            "localizada",
            "localizado",
            "fica",
            "ficam",
            "address",
            "location",
            "located",
            "directions",
        ],
    ),
    (
        "duracao",
        &[
            "duracao", "dura", "duram", "demora", "demoram", "tempo", "leva", "levam", "long",
            "duration", "lasts", "takes",
        ],
    ),
    (
        "convenio",
        &[
            "convenio",
            "convenios",
            "plano",
            "planos",
            "insurance",
            "insurances",
            "insurer",
        ],
    ),
    (
        "pagamento",
        &[
            "pagamento",
            "pagamentos",
            "pagar",
            "pago",
            "parcela",
            "parcelas",
            "parcelar",
            "parcelamos",
            "cartao",
            "cartoes",
            "payment",
            "payments",
            "pay",
            "card",
            "cards",
            "installments",
        ],
    ),
];

/// Portuguese and English stop words (folded), plus words every question to a clinic shares.
const STOP_WORDS: &[&str] = &[
    // Portuguese
    "a",
    "o",
    "as",
    "os",
    "um",
    "uma",
    "uns",
    "umas",
    "de",
    "da",
    "do",
    "das",
    "dos",
    "em",
    "no",
    "na",
    "nos",
    "nas",
    "por",
    "pra",
    "pro",
    "para",
    "com",
    "sem",
    "e",
    "ou",
    "que",
    "qual",
    "quais",
    "quem",
    "como",
    "onde",
    "quando",
    "quanto",
    "quanta",
    "quantos",
    "quantas",
    "se",
    "me",
    "te",
    "lhe",
    "eu",
    "tu",
    "ele",
    "ela",
    "eles",
    "elas",
    "voce",
    "voces",
    "vc",
    "vcs",
    "meu",
    "minha",
    "meus",
    "minhas",
    "seu",
    "sua",
    "seus",
    "suas",
    "ser",
    "estar",
    "esta",
    "estao",
    "esse",
    "essa",
    "isso",
    "isto",
    "este",
    "aqui",
    "ai",
    "la",
    "tem",
    "tenho",
    "ter",
    "ha",
    "sao",
    "foi",
    "vai",
    "vou",
    "posso",
    "pode",
    "podem",
    "poderia",
    "gostaria",
    "queria",
    "quero",
    "saber",
    "favor",
    "obrigado",
    "obrigada",
    "ola",
    "oi",
    "bom",
    "boa",
    "dia",
    "tarde",
    "noite",
    "tudo",
    "bem",
    "sim",
    "nao",
    "ja",
    "mais",
    "muito",
    "tambem",
    "entao",
    "ainda",
    "so",
    "ate",
    "ao",
    "aos",
    "pelo",
    "pela",
    "num",
    "numa",
    "sobre",
    "algum",
    "alguma",
    "preciso",
    "gente",
    "aceita",
    "aceitam",
    "atende",
    "atendem",
    "atendemos",
    "fazer",
    "faz",
    "fazem",
    "faco",
    "informar",
    "informacao",
    "duvida",
    "clinica",
    "clinicas",
    "consultorio",
    "doutor",
    "doutora",
    "dr",
    "dra",
    // English
    "an",
    "the",
    "of",
    "to",
    "in",
    "on",
    "at",
    "for",
    "from",
    "by",
    "with",
    "about",
    "and",
    "or",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "do",
    "does",
    "did",
    "can",
    "could",
    "would",
    "should",
    "will",
    "i",
    "you",
    "we",
    "they",
    "he",
    "she",
    "it",
    "my",
    "your",
    "our",
    "their",
    "me",
    "us",
    "what",
    "whats",
    "which",
    "who",
    "how",
    "when",
    "where",
    "why",
    "this",
    "that",
    "these",
    "those",
    "there",
    "here",
    "have",
    "has",
    "had",
    "please",
    "thanks",
    "thank",
    "hi",
    "hello",
    "hey",
    "good",
    "morning",
    "afternoon",
    "evening",
    "s",
    "t",
    "any",
    "some",
    "much",
    "many",
    "want",
    "like",
    "need",
    "know",
    "tell",
    "get",
    "im",
    "am",
    "if",
    "not",
    "no",
    "yes",
    "just",
    "so",
    "also",
    "accept",
    "clinic",
    "office",
    "doctor",
];

/// Words a pure greeting may consist of; at least one of [`GREETING_CORE`] must appear.
const GREETING_WORDS: &[&str] = &[
    "oi",
    "ola",
    "opa",
    "e",
    "ai",
    "bom",
    "boa",
    "dia",
    "tarde",
    "noite",
    "tudo",
    "bem",
    "td",
    "como",
    "vai",
    "esta",
    "pessoal",
    "gente",
    "hello",
    "hi",
    "hey",
    "good",
    "morning",
    "afternoon",
    "evening",
    "there",
    "everyone",
    "how",
    "are",
    "you",
    "doing",
    "doutor",
    "doutora",
    "dr",
    "dra",
];
const GREETING_CORE: &[&str] = &[
    "oi",
    "ola",
    "opa",
    "dia",
    "tarde",
    "noite",
    "tudo",
    "hello",
    "hi",
    "hey",
    "morning",
    "afternoon",
    "evening",
];

fn is_greeting_only(text: &str) -> bool {
    let ws = words(text);
    !ws.is_empty()
        && ws.iter().all(|w| GREETING_WORDS.contains(&w.as_str()))
        && ws.iter().any(|w| GREETING_CORE.contains(&w.as_str()))
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
            OfflineOutcome::Answer { entry_id, .. } => entry_id.as_u128(),
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
        let OfflineOutcome::Answer { text, entry_id, .. } =
            answer("Quanto custa o clareamento?", &kb, Lang::PtBr)
        else {
            panic!()
        };
        assert_eq!(entry_id, Uuid::from_u128(3));
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
            "Minha filha está com febre e dor de ouvido desde ontem, o que eu faço?",
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
        assert_eq!(terms("avaliações"), vec!["avaliacao"]);
        assert_eq!(terms("exames"), terms("exame"));
        assert_eq!(terms("prices"), terms("price"));
        assert_eq!(terms("Quanto custa?"), vec!["preco"]);
        assert_eq!(terms("how much is it"), vec!["preco"]);
        assert_eq!(terms("R$ 150"), vec!["150"]);
        assert!(shares_long_prefix("agendar", "agendamento"));
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
