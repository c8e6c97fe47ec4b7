//! Text as customers write it on WhatsApp, turned into index terms (pt-BR and en).
//!
//! The pipeline, in order (each step has unit tests below):
//! 1. **Folding**: lowercase, accents and other combining marks removed ("Médico" = "medico").
//! 2. **Words, numbers and times**: split on anything not a letter or digit, except that
//!    "8:00", "8h", "08h00", "8hs", "9am" and "7pm" become one time term ("8h", "8h", "8h",
//!    "8h", "9h", "19h"; "12:30" → "12h30") and "150,00" becomes "150".
//! 3. **Stretched letters** squeezed ("oiii" → "oi", "simmm" → "sim"); laughter ("kkkk",
//!    "rsrs", "haha") dropped.
//! 4. **Abbreviations** expanded from a table ("vc" → "voce", "qto" → "quanto", "hj" → "hoje",
//!    "sab" → "sabado", "thx" → "thanks", "ur" → "your"…), so the stop-word list and the
//!    concept rules see whole words.
//! 5. **Greetings and sign-offs stripped anywhere** ("oi boa tarde", "tudo bem?", "obrigado!",
//!    "thanks in advance"), remembered so a greeting-only message can be told apart.
//! 6. **Concepts**: a few two-word questions name a concept ("quanto custa", "how much" →
//!    price; "quanto tempo", "how long" → duration; "onde fica", "where is" → address;
//!    "que horas", "what time" → hours) and one-word synonyms map onto the same term.
//! 7. **Stop words** removed (Portuguese, English, chat fillers, "hoje", "tomorrow").
//! 8. **Stemming** with the Snowball stemmers (`rust-stemmers`), Portuguese or English by
//!    the text's language. Portuguese words are stemmed from their folded form with the
//!    accents of the suffixes Snowball needs put back ("castracao" → "castração"), so an
//!    entry written with accents and a question written without reach the same stem.
//! 9. **Tenant synonyms**: groups of phrases a tenant declares equal ("convênio = plano de
//!    saúde") are rewritten to the group's first phrase before all of this.
//!
//! Typo tolerance lives with the index ([`super::offline`]): it needs the tenant's vocabulary.

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;

use crate::i18n::Lang;

/// One index term with the word it came from (folded, abbreviations expanded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) term: String,
    pub(crate) word: String,
}

/// The result of analysing a text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Analysis {
    pub(crate) tokens: Vec<Token>,
    /// Whether a greeting or sign-off was found (and stripped).
    pub(crate) greeted: bool,
}

impl Analysis {
    pub(crate) fn terms(&self) -> Vec<String> {
        self.tokens.iter().map(|t| t.term.clone()).collect()
    }
}

/// A tenant's synonym groups: each group's phrases are equal; the first one is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Synonyms {
    groups: Vec<Vec<Vec<String>>>,
}

impl Synonyms {
    /// Parses one group per line, phrases separated by `=` or `,`
    /// ("convênio = plano de saúde = plano"). Blank lines and lines with one phrase are
    /// ignored; at most 200 groups of at most 20 phrases of at most 6 words each are kept.
    pub(crate) fn parse(text: &str) -> Synonyms {
        let mut groups = Vec::new();
        for line in text.lines().take(200) {
            let phrases: Vec<Vec<String>> = line
                .split(['=', ','])
                .take(20)
                .map(|p| {
                    squeeze_words(&fold(p))
                        .into_iter()
                        .flat_map(expand)
                        .take(6)
                        .collect::<Vec<_>>()
                })
                .filter(|p| !p.is_empty())
                .collect();
            if phrases.len() >= 2 {
                groups.push(phrases);
            }
        }
        Synonyms { groups }
    }

    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Rewrites every phrase of a group to the group's first phrase (longest phrases first).
    fn apply(&self, words: Vec<String>) -> Vec<String> {
        if self.groups.is_empty() {
            return words;
        }
        let mut out = Vec::with_capacity(words.len());
        let mut i = 0;
        'outer: while i < words.len() {
            let mut best: Option<(usize, &Vec<String>)> = None;
            for g in &self.groups {
                for p in &g[1..] {
                    if words[i..].starts_with(p) && best.is_none_or(|(n, _)| p.len() > n) {
                        best = Some((p.len(), &g[0]));
                    }
                }
            }
            if let Some((n, canon)) = best {
                out.extend(canon.iter().cloned());
                i += n;
                continue 'outer;
            }
            out.push(words[i].clone());
            i += 1;
        }
        out
    }
}

/// Lowercases and removes accents and other combining marks.
pub(crate) fn fold(text: &str) -> String {
    text.chars()
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .collect()
}

/// The language a text is most likely in (`fallback` when the words don't say).
pub(crate) fn guess_lang(text: &str, fallback: Lang) -> Lang {
    const PT: &[&str] = &[
        "voce", "voces", "vc", "vcs", "ola", "oi", "obrigado", "obrigada", "quanto", "qto", "qual",
        "quais", "horario", "nao", "sim", "tudo", "bem", "dia", "boa", "bom", "tarde", "noite",
        "queria", "quero", "gostaria", "consulta", "preco", "aceitam", "aceita", "tem", "para",
        "pra", "com", "meu", "minha", "amanha", "hoje", "hj", "sabado", "de", "do", "da", "e", "o",
        "a", "que", "q", "no", "na", "os", "as", "um", "uma", "custa", "atende", "atendem",
        "aberto", "abre", "abrem", "esta", "ta", "como", "onde", "fica", "se",
    ];
    const EN: &[&str] = &[
        "you",
        "hello",
        "hi",
        "thanks",
        "thank",
        "how",
        "much",
        "what",
        "which",
        "when",
        "do",
        "does",
        "is",
        "are",
        "open",
        "price",
        "appointment",
        "want",
        "would",
        "like",
        "the",
        "my",
        "today",
        "tomorrow",
        "saturday",
        "please",
        "can",
        "i",
        "your",
        "ur",
        "u",
        "of",
        "to",
        "for",
        "and",
        "it",
        "have",
        "there",
        "where",
        "we",
        "an",
        "hey",
        "thx",
    ];
    let ws = split_words(&fold(text));
    let pt = ws.iter().filter(|w| PT.contains(&w.as_str())).count();
    let en = ws.iter().filter(|w| EN.contains(&w.as_str())).count();
    match pt.cmp(&en) {
        std::cmp::Ordering::Greater => Lang::PtBr,
        std::cmp::Ordering::Less => Lang::En,
        std::cmp::Ordering::Equal => fallback,
    }
}

/// Analyses `text` written in `lang` (which picks the stemmer) with the tenant's synonyms.
pub(crate) fn analyze(text: &str, lang: Lang, synonyms: &Synonyms) -> Analysis {
    let words: Vec<String> = squeeze_words(&fold(text))
        .into_iter()
        .flat_map(expand)
        .collect();
    let words = synonyms.apply(words);
    let (words, greeted) = strip_greetings(words);
    let stemmer = match lang {
        Lang::PtBr => Stemmer::create(Algorithm::Portuguese),
        Lang::En => Stemmer::create(Algorithm::English),
    };
    let mut tokens = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        let prev = i.checked_sub(1).map(|p| words[p].as_str());
        // Two-word questions that name a concept.
        if let Some((concept, used)) = concept_pair(w, next) {
            if let Some(c) = concept {
                tokens.push(Token {
                    term: c.to_owned(),
                    word: w.to_owned(),
                });
            }
            i += used;
            continue;
        }
        // "fim de semana": the weekend, asked as Saturday.
        if w == "fim"
            && next == Some("de")
            && words.get(i + 2).map(String::as_str) == Some("semana")
        {
            tokens.push(Token {
                term: "sabado".into(),
                word: "fim de semana".into(),
            });
            i += 3;
            continue;
        }
        // "fica" is "is located" after "onde" and "comes to" after "quanto".
        if matches!(w, "fica" | "ficam" | "fico") {
            if prev == Some("onde") {
                tokens.push(Token {
                    term: "endereco".into(),
                    word: w.into(),
                });
            }
            i += 1;
            continue;
        }
        i += 1;
        if w.chars().count() < 2 && !w.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if STOP_WORDS.contains(&w) {
            continue;
        }
        if let Some(c) = concept(w) {
            tokens.push(Token {
                term: c.to_owned(),
                word: w.to_owned(),
            });
            continue;
        }
        let term = stem(&stemmer, lang, w);
        if term.is_empty() || STOP_WORDS.contains(&term.as_str()) {
            continue;
        }
        tokens.push(Token {
            term,
            word: w.to_owned(),
        });
    }
    // "quanto tempo demora" names one concept twice.
    tokens.dedup_by(|a, b| a.term == b.term);
    Analysis { tokens, greeted }
}

/// The folded, shorthand-expanded words of a text, nothing removed (for [`super::guard`]).
pub(crate) fn guard_words(text: &str) -> Vec<String> {
    squeeze_words(&fold(text))
        .into_iter()
        .flat_map(expand)
        .collect()
}

/// Stems one folded word. Words with digits (times, prices) are kept as they are.
fn stem(stemmer: &Stemmer, lang: Lang, w: &str) -> String {
    if w.chars().any(|c| c.is_ascii_digit()) || w.chars().count() <= 3 {
        return w.to_owned();
    }
    match lang {
        Lang::PtBr => fold(&stemmer.stem(&reaccent(w))),
        Lang::En => stemmer.stem(w).into_owned(),
    }
}

/// Puts back the accents of the Portuguese suffixes the Snowball stemmer looks for, so a
/// folded word stems like its accented spelling.
fn reaccent(w: &str) -> String {
    // Plurals in -ões / -ães become -ão first (Snowball leaves "sessões" and "sessão"
    // apart), then the accents Snowball's suffixes need are put back.
    const SUFFIXES: &[(&str, &str)] = &[
        ("acoes", "ação"),
        ("acao", "ação"),
        ("ucoes", "ução"),
        ("ucao", "ução"),
        ("coes", "ção"),
        ("cao", "ção"),
        ("soes", "são"),
        ("sao", "são"),
        ("oes", "ão"),
        ("aes", "ão"),
        ("ais", "al"),
        ("eis", "el"),
        ("ancias", "âncias"),
        ("ancia", "ância"),
        ("encias", "ências"),
        ("encia", "ência"),
        ("aveis", "áveis"),
        ("avel", "ável"),
        ("iveis", "íveis"),
        ("ivel", "ível"),
        ("logias", "logías"),
        ("logia", "logía"),
        ("ao", "ão"),
    ];
    for (plain, accented) in SUFFIXES {
        if let Some(base) = w.strip_suffix(plain)
            && base.chars().count() >= 2
        {
            return format!("{base}{accented}");
        }
    }
    w.to_owned()
}

/// Folded text → words, with times and prices kept whole, stretched letters squeezed and
/// laughter dropped.
fn squeeze_words(folded: &str) -> Vec<String> {
    // A currency sign says "price": "R$ 150" is an entry about a price.
    let folded = folded.replace(['$', '€', '£'], " preco ");
    split_words(&folded)
        .into_iter()
        .filter_map(|w| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                return Some(normalise_number(&w));
            }
            let w = squeeze(&w);
            (!is_laughter(&w)).then_some(w)
        })
        .collect()
}

/// Splits on anything but letters and digits, keeping "8:00" and "150,00" together. A
/// hyphenated word gives its parts and the joined word ("wi-fi" → "wi", "fi", "wifi").
fn split_words(folded: &str) -> Vec<String> {
    let chars: Vec<char> = folded.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut compound = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let hyphen_joins = c == '-'
            && cur.chars().last().is_some_and(char::is_alphabetic)
            && chars.get(i + 1).is_some_and(|n| n.is_alphabetic());
        if hyphen_joins {
            compound.push_str(&cur);
            out.push(std::mem::take(&mut cur));
            continue;
        }
        if !compound.is_empty() && !c.is_alphanumeric() && !cur.is_empty() {
            compound.push_str(&cur);
            out.push(std::mem::take(&mut cur));
            out.push(std::mem::take(&mut compound));
            continue;
        }
        let joins_digits = matches!(c, ':' | ',' | '.')
            && cur.chars().last().is_some_and(|p| p.is_ascii_digit())
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if c.is_alphanumeric() || joins_digits {
            cur.push(c);
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        if !compound.is_empty() {
            compound.push_str(&cur);
            out.push(cur);
            out.push(compound);
        } else {
            out.push(cur);
        }
    }
    out
}

/// "8:00" → "8h", "12:30" → "12h30", "08h" / "8hs" / "8hrs" → "8h", "9am" → "9h",
/// "7pm" → "19h", "150,00" → "150", "1.500" → "1500".
fn normalise_number(w: &str) -> String {
    let time = |h: &str, m: &str| -> Option<String> {
        let h: u32 = h.parse().ok()?;
        let m: u32 = if m.is_empty() { 0 } else { m.parse().ok()? };
        (h < 24 && m < 60).then(|| {
            if m == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{m:02}")
            }
        })
    };
    let digits_then = |s: &str| {
        let n = s.chars().take_while(char::is_ascii_digit).count();
        (s[..n].to_owned(), s[n..].to_owned())
    };
    if let Some((h, m)) = w.split_once(':')
        && !h.is_empty()
        && h.len() <= 2
        && m.len() == 2
        && h.chars().all(|c| c.is_ascii_digit())
        && m.chars().all(|c| c.is_ascii_digit())
        && let Some(t) = time(h, m)
    {
        return t;
    }
    let (num, rest) = digits_then(w);
    if !num.is_empty() && num.len() <= 2 {
        match rest.as_str() {
            "h" | "hs" | "hr" | "hrs" | "horas" => {
                if let Some(t) = time(&num, "") {
                    return t;
                }
            }
            "am" | "pm" => {
                if let Ok(h) = num.parse::<u32>()
                    && (1..=12).contains(&h)
                {
                    let h = match (rest.as_str(), h) {
                        ("am", 12) => 0,
                        ("pm", 12) => 12,
                        ("pm", h) => h + 12,
                        (_, h) => h,
                    };
                    return format!("{h}h");
                }
            }
            r if r.starts_with('h') => {
                let m = &r[1..];
                if m.len() == 2
                    && m.chars().all(|c| c.is_ascii_digit())
                    && let Some(t) = time(&num, m)
                {
                    return t;
                }
            }
            _ => {}
        }
    }
    // Prices: "150,00" → "150"; "1.500" → "1500".
    let mut p = w.to_owned();
    for cents in [",00", ".00"] {
        if let Some(base) = p.strip_suffix(cents) {
            p = base.to_owned();
        }
    }
    if p.contains('.') && p.split('.').skip(1).all(|g| g.len() == 3) {
        p = p.replace('.', "");
    }
    p
}

/// Runs of three or more of one letter become one ("oiii" → "oi").
fn squeeze(w: &str) -> String {
    let chars: Vec<char> = w.chars().collect();
    let mut out = String::with_capacity(w.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut j = i;
        while j < chars.len() && chars[j] == c {
            j += 1;
        }
        let run = j - i;
        if run >= 3 {
            out.push(c);
        } else {
            out.extend(&chars[i..j]);
        }
        i = j;
    }
    out
}

fn is_laughter(w: &str) -> bool {
    (w.len() >= 2 && w.chars().all(|c| c == 'k'))
        || matches!(
            w,
            "rs" | "rsrs"
                | "rsrsrs"
                | "haha"
                | "hahaha"
                | "hehe"
                | "hehehe"
                | "kk"
                | "lol"
                | "lmao"
                | "ahah"
                | "ahaha"
        )
}

/// WhatsApp shorthand → whole words.
fn expand(w: String) -> Vec<String> {
    let to: &[&str] = match w.as_str() {
        "vc" | "vce" | "ce" => &["voce"],
        "vcs" | "ces" => &["voces"],
        "q" | "ke" | "oq" => &["que"],
        "qto" | "qnto" | "qt" | "qnt" => &["quanto"],
        "qtos" | "qntos" => &["quantos"],
        "qtas" | "qntas" => &["quantas"],
        "qnd" | "qdo" | "qndo" | "qd" => &["quando"],
        "pq" | "pk" | "pqe" => &["porque"],
        "tb" | "tbm" | "tmb" | "tbem" => &["tambem"],
        "hj" | "hje" => &["hoje"],
        "td" => &["tudo"],
        "tds" => &["todos"],
        "pfv" | "pfvr" | "pf" | "plmdds" => &["favor"],
        "ta" | "tah" => &["esta"],
        "amanha" | "amnh" | "amn" | "amh" => &["amanha"],
        "sab" | "sabad" => &["sabado"],
        "dom" | "doming" => &["domingo"],
        "seg" => &["segunda"],
        "sex" => &["sexta"],
        "qua" => &["quarta"],
        "qui" => &["quinta"],
        "fds" => &["fim", "semana"],
        "msg" => &["mensagem"],
        "mt" | "mto" | "mta" | "mui" => &["muito"],
        "obg" | "obgd" | "obgda" | "brigado" | "brigada" => &["obrigado"],
        "vlw" | "vlws" => &["valeu"],
        "blz" => &["beleza"],
        "ctz" => &["certeza"],
        "dps" | "dpois" => &["depois"],
        "agr" => &["agora"],
        "p" | "pra" | "pro" => &["para"],
        "n" => &["nao"],
        "cm" => &["como"],
        "eh" => &["e"],
        "hr" | "hrs" => &["hora"],
        "info" | "infos" => &["informacao"],
        "consul" | "cons" => &["consulta"],
        "whats" | "zap" | "wpp" | "zapzap" => &["whatsapp"],
        "eai" | "eae" | "iae" | "oie" | "oii" | "oiee" | "oiie" | "olaa" => &["oi"],
        "bdia" => &["bom", "dia"],
        "btarde" => &["boa", "tarde"],
        "bnoite" => &["boa", "noite"],
        // English
        "u" | "ya" | "yu" => &["you"],
        "ur" | "yr" => &["your"],
        "r" => &["are"],
        "thx" | "thnx" | "thks" | "tks" | "ty" | "tnx" => &["thanks"],
        "pls" | "plz" | "plss" | "pleasee" => &["please"],
        "sat" => &["saturday"],
        "sun" => &["sunday"],
        "mon" => &["monday"],
        "tue" | "tues" => &["tuesday"],
        "wed" => &["wednesday"],
        "thu" | "thurs" => &["thursday"],
        "fri" => &["friday"],
        "tmrw" | "tmr" | "tomoro" | "tomorow" | "2moro" => &["tomorrow"],
        "tdy" => &["today"],
        "appt" | "appts" => &["appointment"],
        "abt" => &["about"],
        "cuz" | "coz" | "bc" => &["because"],
        "wat" | "wut" => &["what"],
        "wanna" => &["want"],
        "gonna" => &["going"],
        "im" => &["i"],
        "dont" | "doesnt" | "isnt" | "arent" | "cant" => &["not"],
        "hiya" | "heyy" | "hii" => &["hi"],
        "bday" => &["birthday"],
        "asap" => &["soon"],
        "min" | "mins" => &["minute"],
        _ => return vec![w],
    };
    to.iter().map(|s| (*s).to_owned()).collect()
}

/// Greeting phrases (folded, after expansion): a message of nothing else is a greeting.
const GREETINGS: &[&[&str]] = &[
    &["bom", "dia"],
    &["boa", "tarde"],
    &["boa", "noite"],
    &["tudo", "bem"],
    &["tudo", "bom"],
    &["tudo", "certo"],
    &["como", "vai"],
    &["como", "esta"],
    &["good", "morning"],
    &["good", "afternoon"],
    &["good", "evening"],
    &["good", "day"],
    &["hi", "there"],
    &["hello", "there"],
    &["how", "are", "you"],
    &["oi"],
    &["ola"],
    &["opa"],
    &["salve"],
    &["hello"],
    &["hi"],
    &["hey"],
];

/// Sign-offs and politeness (stripped like greetings, but "obrigado" alone is no greeting).
const SIGN_OFFS: &[&[&str]] = &[
    &["desde", "ja"],
    &["por", "favor"],
    &["muito", "obrigado"],
    &["muito", "obrigada"],
    &["thank", "you"],
    &["thanks", "in", "advance"],
    &["thanks", "a", "lot"],
    &["have", "a", "nice", "day"],
    &["obrigado"],
    &["obrigada"],
    &["valeu"],
    &["grato"],
    &["grata"],
    &["agradeco"],
    &["abraco"],
    &["abracos"],
    &["abs"],
    &["att"],
    &["atenciosamente"],
    &["tchau"],
    &["favor"],
    &["thanks"],
    &["thank"],
    &["cheers"],
    &["regards"],
    &["bye"],
    &["please"],
    &["pessoal"],
    &["gente"],
];

/// Removes greeting and sign-off phrases wherever they are; tells whether a greeting was
/// among them.
fn strip_greetings(words: Vec<String>) -> (Vec<String>, bool) {
    let mut out = Vec::with_capacity(words.len());
    let mut greeted = false;
    let mut i = 0;
    let at = |i: usize, g: &[&str]| {
        words[i..].len() >= g.len() && g.iter().zip(&words[i..]).all(|(a, b)| a == b)
    };
    'outer: while i < words.len() {
        for g in GREETINGS {
            if at(i, g) {
                i += g.len();
                greeted = true;
                continue 'outer;
            }
        }
        for g in SIGN_OFFS {
            if at(i, g) {
                i += g.len();
                continue 'outer;
            }
        }
        out.push(words[i].clone());
        i += 1;
    }
    (out, greeted)
}

/// Two-word questions: Some((concept or none, words used)).
fn concept_pair(w: &str, next: Option<&str>) -> Option<(Option<&'static str>, usize)> {
    let n = next?;
    Some(match (w, n) {
        ("quanto" | "quanta", "tempo" | "dura" | "demora" | "leva" | "duram" | "demoram") => {
            (Some("duracao"), 2)
        }
        (
            "quanto" | "quanta",
            "custa" | "custam" | "fica" | "ficam" | "sai" | "saem" | "e" | "esta" | "cobra"
            | "cobram" | "seria" | "vai" | "pago" | "pagaria",
        ) => (Some("preco"), 2),
        ("how", "much") => (Some("preco"), 2),
        ("how", "long") => (Some("duracao"), 2),
        ("how", "late" | "early") => (Some("horario"), 2),
        ("how", "far") => (Some("endereco"), 2),
        ("que" | "quais" | "qual" | "what" | "which", "hora" | "horas" | "time" | "times") => {
            (Some("horario"), 2)
        }
        ("where", "is" | "are") => (Some("endereco"), 2),
        ("fim", "semana") => (Some("sabado"), 2),
        _ => return None,
    })
}

/// The terms [`concept`] maps onto: what kind of thing is asked (a price, the hours…), as
/// opposed to what it is asked about (a cleaning, Saturday).
pub(crate) const CONCEPTS: &[&str] = &[
    "preco",
    "horario",
    "agendar",
    "endereco",
    "duracao",
    "convenio",
    "pagamento",
];

/// One-word synonyms for the questions every business gets, onto one term each.
fn concept(w: &str) -> Option<&'static str> {
    Some(match w {
        "quanto" | "quanta" => "preco",
        "preco" | "precos" | "valor" | "valores" | "custa" | "custam" | "custo" | "custos"
        | "cobra" | "cobram" | "cobrado" | "tabela" | "price" | "prices" | "cost" | "costs"
        | "fee" | "fees" | "pricing" | "charge" | "charges" | "precinho" => "preco",
        "horario" | "horarios" | "abre" | "abrem" | "abrimos" | "abrir" | "aberto" | "aberta"
        | "abertos" | "abertas" | "funciona" | "funcionam" | "funcionamento" | "fecha"
        | "fecham" | "fechado" | "fechada" | "fechar" | "expediente" | "hour" | "hours"
        | "open" | "opens" | "opening" | "close" | "closes" | "closing" | "closed" | "manha"
        | "tarde" | "noite" | "morning" | "afternoon" | "evening" | "lunch" | "almoco" => "horario",
        "agendar" | "agenda" | "agendamento" | "agendo" | "marcar" | "marco" | "marcacao"
        | "book" | "booking" | "schedule" | "scheduling" => "agendar",
        "endereco" | "enderecos" | "localizacao" | "localizada" | "localizado" | "localizados"
        | "address" | "location" | "located" | "directions" => "endereco",
        "duracao" | "dura" | "duram" | "demora" | "demoram" | "duration" | "lasts" | "last" => {
            "duracao"
        }
        "convenio" | "convenios" | "plano" | "planos" | "insurance" | "insurances" | "insurer"
        | "insured" => "convenio",
        "pagamento" | "pagamentos" | "pagar" | "pago" | "parcela" | "parcelas" | "parcelar"
        | "parcelado" | "parcelam" | "parcelamos" | "parcelamento" | "cartao" | "cartoes"
        | "payment" | "payments" | "pay" | "installments" | "installment" => "pagamento",
        _ => return None,
    })
}

/// Portuguese and English stop words (folded), chat fillers and words that only place a
/// question in time ("hoje", "tomorrow"): a question about today's hours is about hours.
pub(crate) const STOP_WORDS: &[&str] = &[
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
    "para",
    "pela",
    "pelo",
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
    "meu",
    "minha",
    "meus",
    "minhas",
    "seu",
    "sua",
    "seus",
    "suas",
    "nosso",
    "nossa",
    "ser",
    "estar",
    "esta",
    "estao",
    "estou",
    "to",
    "sou",
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
    "teria",
    "ha",
    "sao",
    "foi",
    "vai",
    "vou",
    "vao",
    "posso",
    "pode",
    "podem",
    "poderia",
    "podia",
    "gostaria",
    "queria",
    "quero",
    "saber",
    "favor",
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
    "num",
    "numa",
    "sobre",
    "algum",
    "alguma",
    "preciso",
    "precisa",
    "aceita",
    "aceitam",
    "atende",
    "atendem",
    "atendemos",
    "atendimento",
    "fazer",
    "faz",
    "fazem",
    "faco",
    "fazendo",
    "informar",
    "informacao",
    "informacoes",
    "duvida",
    "clinica",
    "clinicas",
    "consultorio",
    "doutor",
    "doutora",
    "dr",
    "dra",
    "hoje",
    "amanha",
    "agora",
    "ontem",
    "depois",
    "porque",
    "tudo",
    "todos",
    "todo",
    "toda",
    "todas",
    "beleza",
    "certeza",
    "mensagem",
    "whatsapp",
    "moca",
    "moco",
    "senhor",
    "senhora",
    "sr",
    "sra",
    "ok",
    "okay",
    "certo",
    "legal",
    "show",
    "bom",
    "boa",
    "dia",
    "gente",
    "pessoal",
    "ne",
    "tipo",
    "coisa",
    "aquele",
    "aquela",
    "desse",
    "dessa",
    "deste",
    "desta",
    "nesse",
    "nessa",
    "neste",
    "nesta",
    "qlq",
    "qualquer",
    "vcs",
    "vc",
    "sabe",
    "sabem",
    "dizer",
    "diz",
    "falar",
    "fala",
    "vez",
    "vezes",
    "semana",
    "mes",
    "ano",
    "hein",
    "eh",
    "ah",
    "oh",
    "uai",
    "tal",
    // English
    "an",
    "the",
    "of",
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
    "its",
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
    "am",
    "if",
    "not",
    "no",
    "yes",
    "just",
    "so",
    "also",
    "accept",
    "accepts",
    "clinic",
    "office",
    "doctor",
    "today",
    "tomorrow",
    "tonight",
    "now",
    "again",
    "still",
    "then",
    "because",
    "going",
    "go",
    "come",
    "coming",
    "there",
    "out",
    "up",
    "let",
    "ok",
    "okay",
    "sure",
    "really",
    "one",
    "day",
    "days",
    "time",
    "week",
    "guys",
    "folks",
    "everyone",
    "wondering",
    "question",
    "info",
    "information",
    "take",
    "takes",
    "offer",
    "offers",
    "provide",
    "work",
    "available",
    "possible",
    "way",
    "ask",
    "asking",
    "anyone",
    "someone",
    "do",
    "dr",
    "to",
    "a",
    "able",
    "be",
    "see",
    "help",
    "make",
    "use",
    "than",
    "more",
    "very",
    "too",
    "all",
    "only",
    "anything",
    "something",
    "everything",
    "bring",
    "dao",
    "dar",
    "levar",
    "levo",
    "trazer",
    "traz",
    "trago",
    "until",
    "till",
    "til",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str, lang: Lang) -> Vec<String> {
        analyze(text, lang, &Synonyms::default()).terms()
    }
    fn pt(text: &str) -> Vec<String> {
        t(text, Lang::PtBr)
    }
    fn en(text: &str) -> Vec<String> {
        t(text, Lang::En)
    }

    #[test]
    fn folding_removes_case_and_accents() {
        assert_eq!(
            fold("Médico ÀS Informações Ç Ñ"),
            "medico as informacoes c n"
        );
        assert_eq!(fold("SÁBADO"), "sabado");
        assert_eq!(pt("Sábado"), pt("sabado"));
        assert_eq!(pt("CASTRAÇÃO"), pt("castracao"));
    }

    #[test]
    fn snowball_stemming_joins_word_forms() {
        // Portuguese: plurals, gender, verb and noun forms, with and without accents.
        assert_eq!(pt("consultas"), pt("consulta"));
        assert_eq!(pt("gata"), pt("gato"));
        assert_eq!(pt("gatos"), pt("gatas"));
        assert_eq!(pt("dentes"), pt("dente"));
        assert_eq!(pt("avaliações"), pt("avaliacao"));
        assert_eq!(pt("vacinas"), pt("vacinação"));
        assert_eq!(pt("exames"), pt("exame"));
        assert_eq!(pt("sessões"), pt("sessao"));
        assert_eq!(pt("sinais"), pt("sinal"));
        // English: "take" stays a word, plurals and -ing forms join.
        assert_eq!(en("cleaning"), en("cleanings"));
        assert_eq!(en("vaccines"), en("vaccine"));
        assert_eq!(en("deliveries"), en("delivery"));
        assert_eq!(en("neutering"), en("neutered"));
    }

    #[test]
    fn whatsapp_shorthand_is_expanded_then_dropped_or_kept() {
        assert_eq!(pt("qto custa a limpeza"), pt("quanto custa a limpeza"));
        assert_eq!(pt("vcs atendem sab?"), pt("vocês atendem sábado?"));
        assert_eq!(pt("vc tb faz clareamento hj?"), pt("clareamento"));
        assert_eq!(pt("pq td ta fechado?"), vec!["horario"]);
        assert_eq!(pt("pfv"), Vec::<String>::new());
        assert_eq!(pt("abre amanha?"), vec!["horario"]);
        assert_eq!(pt("seg a sex"), pt("segunda a sexta"));
        assert_eq!(en("r u open tmrw thx"), vec!["horario"]);
        assert_eq!(en("ur prices pls"), vec!["preco"]);
        assert_eq!(en("can i book an appt"), en("can I book an appointment"));
    }

    #[test]
    fn greetings_and_sign_offs_are_stripped_anywhere() {
        let a = analyze(
            "oiii boa tarde, tudo bem? vcs abrem sabado? obrigada!!",
            Lang::PtBr,
            &Synonyms::default(),
        );
        assert!(a.greeted);
        assert_eq!(a.terms(), pt("abrem sábado"));
        assert!(analyze("oie", Lang::PtBr, &Synonyms::default()).greeted);
        assert!(pt("oie").is_empty() && pt("Oiiii").is_empty() && pt("Bom diaaa").is_empty());
        assert!(en("Hi there! Thanks in advance, cheers").is_empty());
        // "tarde" alone is a time of day, not a greeting.
        assert_eq!(pt("atendem a tarde?"), vec!["horario"]);
        // Laughter is noise.
        assert_eq!(pt("kkkkk qto custa rsrs"), vec!["preco"]);
    }

    #[test]
    fn hyphenated_words_match_joined_and_apart() {
        assert_eq!(en("Wi-Fi"), vec!["wi", "fi", "wifi"]);
        assert!(en("free wifi").contains(&"wifi".to_owned()));
        assert!(pt("check-up completo").contains(&"check".to_owned()));
    }

    #[test]
    fn numbers_and_times_are_one_term() {
        assert_eq!(pt("8:00"), vec!["8h"]);
        assert_eq!(pt("8h"), vec!["8h"]);
        assert_eq!(pt("08h00"), vec!["8h"]);
        assert_eq!(pt("8hs"), vec!["8h"]);
        assert_eq!(pt("12:30"), vec!["12h30"]);
        assert_eq!(pt("12h30"), vec!["12h30"]);
        assert_eq!(en("9am to 7pm"), vec!["9h", "19h"]);
        assert_eq!(pt("R$ 150,00"), vec!["preco", "150"]);
        assert_eq!(pt("R$ 1.500"), vec!["preco", "1500"]);
        assert_eq!(en("€60"), vec!["preco", "60"]);
    }

    #[test]
    fn concepts_follow_the_question_not_the_word() {
        assert_eq!(pt("quanto custa?"), vec!["preco"]);
        assert_eq!(pt("qto fica?"), vec!["preco"]);
        assert_eq!(pt("onde fica?"), vec!["endereco"]);
        assert_eq!(pt("fica aberto?"), vec!["horario"]);
        assert_eq!(pt("quanto tempo demora"), vec!["duracao"]);
        assert_eq!(en("how much is it"), vec!["preco"]);
        assert_eq!(en("how long does it take"), vec!["duracao"]);
        assert_eq!(en("what time do you open"), vec!["horario"]);
        assert_eq!(en("where are you"), vec!["endereco"]);
        // An appointment is not a booking question by itself.
        assert_ne!(en("my appointment"), en("book"));
    }

    #[test]
    fn tenant_synonyms_rewrite_phrases_to_the_first_one() {
        let s = Synonyms::parse("convênio = plano de saúde\nbanho, tosa\n\nsozinho");
        assert!(!s.is_empty());
        assert_eq!(
            analyze("aceitam plano de saude?", Lang::PtBr, &s).terms(),
            vec!["convenio"]
        );
        assert_eq!(
            analyze("fazem tosa?", Lang::PtBr, &s).terms(),
            analyze("banho", Lang::PtBr, &s).terms()
        );
        assert!(Synonyms::parse("one phrase only").is_empty());
    }

    #[test]
    fn language_guess() {
        assert_eq!(guess_lang("oi vcs abrem sabado", Lang::En), Lang::PtBr);
        assert_eq!(guess_lang("r u open on sat", Lang::PtBr), Lang::En);
        assert_eq!(guess_lang("limpeza", Lang::PtBr), Lang::PtBr);
        // The drafting turn's cases (it had its own copy of this list).
        assert_eq!(guess_lang("Quanto custa a limpeza?", Lang::En), Lang::PtBr);
        assert_eq!(guess_lang("Vocês abrem no sábado?", Lang::En), Lang::PtBr);
        assert_eq!(guess_lang("Não, obrigado", Lang::En), Lang::PtBr);
        assert_eq!(guess_lang("How much is a cleaning?", Lang::PtBr), Lang::En);
        assert_eq!(guess_lang("ok", Lang::PtBr), Lang::PtBr);
        assert_eq!(guess_lang("ok", Lang::En), Lang::En);
    }
}
