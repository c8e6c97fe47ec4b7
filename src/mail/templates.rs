//! The e-mail layout, HTML and plain text, in the recipient's language. Every message is
//! the same shape (subject, paragraphs, one action link), so one pair of askama templates
//! renders them all; the words come from the i18n table like every page's.

use askama::Template;

use super::Content;
use crate::i18n::{Lang, Tr};

#[derive(Template)]
#[template(path = "mail/mail.html")]
struct Html<'a> {
    tr: Tr,
    lang: &'a str,
    c: &'a Content,
}

#[derive(Template)]
#[template(path = "mail/mail.txt")]
struct Text<'a> {
    tr: Tr,
    c: &'a Content,
}

pub(crate) fn html(lang: Lang, c: &Content) -> anyhow::Result<String> {
    Ok(Html {
        tr: lang.tr(),
        lang: lang.code(),
        c,
    }
    .render()?)
}

pub(crate) fn text(lang: Lang, c: &Content) -> anyhow::Result<String> {
    Ok(Text { tr: lang.tr(), c }.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Content {
        Content {
            subject: "<b>Hi</b>".into(),
            paragraphs: vec!["Tom & <Jerry>".into()],
            action: Some(("Go".into(), "https://example.test/x?a=1&b=2".into())),
        }
    }

    #[test]
    fn html_escapes_what_it_is_given_and_text_keeps_it_plain() {
        let h = html(Lang::En, &sample()).unwrap();
        assert!(h.contains("&#60;Jerry&#62;"), "{h}");
        assert!(!h.contains("<Jerry>"));
        assert!(h.contains("lang=\"en\""));
        let t = text(Lang::PtBr, &sample()).unwrap();
        assert!(t.contains("Tom & <Jerry>"));
        assert!(t.contains("https://example.test/x?a=1&b=2"));
        assert!(t.contains(Lang::PtBr.tr().t("mail.footer")));
    }
}
