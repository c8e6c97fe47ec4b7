//! Data-subject request rules that need no I/O.

use crate::domain::account::fold_accents;

/// The keywords that open an erasure request when a tenant set none.
pub(crate) const DEFAULT_DSR_KEYWORDS: [&str; 2] = ["APAGAR MEUS DADOS", "DELETE MY DATA"];

pub(crate) fn default_keywords() -> Vec<String> {
    DEFAULT_DSR_KEYWORDS.map(String::from).to_vec()
}

/// Whether `text` is one of `keywords`: the whole message, ignoring case, accents,
/// punctuation and spacing ("Apagar meus dados!" matches "APAGAR MEUS DADOS").
pub(crate) fn is_keyword(text: &str, keywords: &[String]) -> bool {
    let norm = |s: &str| -> String {
        fold_accents(&s.to_lowercase())
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let t = norm(text);
    !t.is_empty() && keywords.iter().any(|k| norm(k) == t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyword_is_the_whole_message_whatever_its_case_accents_and_punctuation() {
        let k = default_keywords();
        assert!(is_keyword("Apagar meus dados!", &k));
        assert!(is_keyword("  delete   my data ", &k));
        assert!(is_keyword(
            "APAGAR MEUS DADOS",
            &["apagar meus dados".into()]
        ));
        assert!(is_keyword("Excluír", &["excluir".into()]));
        assert!(!is_keyword("please delete my data now", &k));
        assert!(!is_keyword("quero apagar meus dados amanhã", &k));
        assert!(!is_keyword("", &k));
        assert!(!is_keyword("!!!", &["".into()]));
    }
}
