//! English and Brazilian Portuguese. Every visible string goes through [`Tr::t`].
//!
//! Messages live in one table (`messages.rs`) holding both languages side by side, so a key
//! can't exist in one language and not the other; a test checks that every key a template
//! uses is in the table.

mod messages;

use std::{collections::HashMap, sync::OnceLock};

pub(crate) use messages::MESSAGES;

mod api;
mod webhooks;

/// Every table of strings. Areas that grow many strings keep their own table in their own
/// file, so work on two areas does not edit the same lines.
pub(crate) static TABLES: &[&[(&str, &str, &str)]] = &[MESSAGES, api::MESSAGES, webhooks::MESSAGES];

fn all_messages() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    TABLES.iter().flat_map(|t| t.iter())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    #[default]
    En,
    PtBr,
}

impl Lang {
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) const ALL: [Lang; 2] = [Lang::En, Lang::PtBr];

    /// The BCP 47 tag, as used in `<html lang>` and the `lang` cookie.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::PtBr => "pt-BR",
        }
    }

    pub(crate) fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::PtBr => "Português (Brasil)",
        }
    }

    pub(crate) fn parse(code: &str) -> Option<Lang> {
        let code = code.trim().to_ascii_lowercase();
        if code == "en" || code.starts_with("en-") {
            Some(Lang::En)
        } else if code == "pt" || code.starts_with("pt-") {
            Some(Lang::PtBr)
        } else {
            None
        }
    }

    /// Picks the best language from an `Accept-Language` header (by q-value, first wins ties).
    pub(crate) fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("");
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Lang::parse(tag)
                && q > 0.0
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l)
    }

    pub(crate) fn tr(self) -> Tr {
        Tr(self)
    }
}

fn table() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static TABLE: OnceLock<HashMap<&'static str, (&'static str, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| all_messages().map(|(k, en, pt)| (*k, (*en, *pt))).collect())
}

/// The translator handed to every template.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tr(pub Lang);

impl Tr {
    pub(crate) fn lang(&self) -> Lang {
        self.0
    }

    /// The message for `key`; a missing key shows the key itself (and a test catches it).
    pub(crate) fn t(&self, key: &str) -> &'static str {
        match table().get(key) {
            Some((en, pt)) => match self.0 {
                Lang::En => en,
                Lang::PtBr => pt,
            },
            None => {
                tracing::warn!(key, "missing translation");
                "??"
            }
        }
    }

    /// The message for `key` with `{}` placeholders filled in order.
    pub(crate) fn f(&self, key: &str, args: &[&dyn std::fmt::Display]) -> String {
        let mut out = String::new();
        let mut args = args.iter();
        let mut rest = self.t(key);
        while let Some(i) = rest.find("{}") {
            out.push_str(&rest[..i]);
            if let Some(a) = args.next() {
                out.push_str(&a.to_string());
            }
            rest = &rest[i + 2..];
        }
        out.push_str(rest);
        out
    }

    pub(crate) fn has(key: &str) -> bool {
        table().contains_key(key)
    }

    /// A whole number with the language's digit grouping: 10,000 / 10.000.
    pub(crate) fn num(&self, n: i64) -> String {
        let sep = match self.0 {
            Lang::En => ',',
            Lang::PtBr => '.',
        };
        let digits = n.unsigned_abs().to_string();
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if n < 0 {
            out.push('-');
        }
        for (i, d) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(d);
        }
        out
    }

    /// A price in US dollars as the language writes it: $1,490.50 / US$ 1.490,50 (whole
    /// dollars without cents).
    pub(crate) fn usd(&self, cents: i64) -> String {
        let whole = self.num(cents / 100);
        let frac = (cents % 100).unsigned_abs();
        match (self.0, frac) {
            (Lang::En, 0) => format!("${whole}"),
            (Lang::En, f) => format!("${whole}.{f:02}"),
            (Lang::PtBr, 0) => format!("US$ {whole}"),
            (Lang::PtBr, f) => format!("US$ {whole},{f:02}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_prices_follow_the_language() {
        let (en, pt) = (Lang::En.tr(), Lang::PtBr.tr());
        assert_eq!(
            (en.num(10_000), pt.num(10_000)),
            ("10,000".into(), "10.000".into())
        );
        assert_eq!(
            (en.num(999), pt.num(-1_234_567)),
            ("999".into(), "-1.234.567".into())
        );
        assert_eq!(en.num(0), "0");
        assert_eq!(
            (en.usd(14_900), pt.usd(14_900)),
            ("$149".into(), "US$ 149".into())
        );
        assert_eq!(
            (en.usd(149_050), pt.usd(149_050)),
            ("$1,490.50".into(), "US$ 1.490,50".into())
        );
    }

    #[test]
    fn accept_language_picks_the_preferred_supported_language() {
        assert_eq!(
            Lang::from_accept_language("pt-BR,pt;q=0.9,en;q=0.8"),
            Some(Lang::PtBr)
        );
        assert_eq!(
            Lang::from_accept_language("de-DE,en-US;q=0.7,pt;q=0.5"),
            Some(Lang::En)
        );
        assert_eq!(
            Lang::from_accept_language("en;q=0.2, pt-PT;q=0.9"),
            Some(Lang::PtBr)
        );
        assert_eq!(Lang::from_accept_language("fr, de"), None);
        assert_eq!(Lang::from_accept_language("pt;q=0"), None);
    }

    #[test]
    fn keys_are_unique_and_both_languages_are_filled() {
        let mut seen = std::collections::HashSet::new();
        for (key, en, pt) in all_messages() {
            assert!(seen.insert(key), "duplicate key {key}");
            assert!(!en.trim().is_empty(), "{key} has no English");
            assert!(!pt.trim().is_empty(), "{key} has no Portuguese");
            assert_eq!(
                en.matches("{}").count(),
                pt.matches("{}").count(),
                "{key}: placeholders differ"
            );
        }
    }

    /// Every `tr.t("…")` / `tr.f("…"` in templates and sources names a key in the table.
    #[test]
    fn every_key_used_exists() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut missing = Vec::new();
        let mut stack = vec![root.join("templates"), root.join("src")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for marker in [".t(\"", ".f(\"", ".f1(\""] {
                    for (i, _) in text.match_indices(marker) {
                        let rest = &text[i + marker.len()..];
                        let key = &rest[..rest.find('"').unwrap_or(0)];
                        let is_key = !key.is_empty()
                            && key.bytes().all(|b| {
                                b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                            });
                        if is_key && !Tr::has(key) {
                            missing.push(format!("{}: {key}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "missing translations:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn placeholders_fill_in_order() {
        let tr = Tr(Lang::En);
        assert!(tr.f("error.request_id", &[&"abc"]).contains("abc"));
    }
}
