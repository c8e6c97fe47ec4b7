//! Inbound bounds: what a message may hold once it is ours, whatever the gateway sent.
//!
//! WhatsApp itself caps a text at 4,096 characters, a caption at 1,024 and a profile name
//! at 25; a payload with more was not written in WhatsApp. We keep the first part and say
//! in the stored text that the rest was cut, rather than refuse the whole delivery (the
//! other messages in it are real). Names also lose control and bidi-override characters,
//! which would otherwise reorder what staff see around them (an override before "gnp.exe" shows "exe.png").

use super::{InboundMessage, MessageKind};

/// WhatsApp's limit for a text message.
pub(crate) const MAX_TEXT_CHARS: usize = 4096;
/// WhatsApp's limit for a media caption.
pub(crate) const MAX_CAPTION_CHARS: usize = 1024;
/// Profile names are at most 25 characters in WhatsApp; a little room for other clients.
pub(crate) const MAX_NAME_CHARS: usize = 100;
/// File names, MIME types, location names and addresses.
const MAX_SHORT_CHARS: usize = 255;

impl InboundMessage {
    /// The message within WhatsApp's own limits (see the module docs).
    pub(crate) fn bounded(mut self) -> InboundMessage {
        self.sender_name = self.sender_name.as_deref().and_then(clean_name);
        match &mut self.kind {
            MessageKind::Text { body } => cut_long(body, MAX_TEXT_CHARS),
            MessageKind::Media {
                caption,
                mime,
                filename,
                ..
            } => {
                if let Some(c) = caption {
                    cut_long(c, MAX_CAPTION_CHARS);
                }
                *mime = mime.as_deref().and_then(clean_short);
                *filename = filename.as_deref().and_then(clean_short);
            }
            MessageKind::Location { name, address, .. } => {
                *name = name.as_deref().and_then(clean_short);
                *address = address.as_deref().and_then(clean_short);
            }
            MessageKind::Contacts { entries } => {
                entries.truncate(50);
                for e in entries {
                    e.name = e.name.as_deref().and_then(clean_name);
                }
            }
            _ => {}
        }
        self
    }
}

/// Keeps the first `max` characters of `text` and says how long it was.
fn cut_long(text: &mut String, max: usize) {
    text.retain(|c| c != '\0');
    let total = text.chars().count();
    if total <= max {
        return;
    }
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    text.truncate(end);
    text.push_str(&format!(
        "…\n[cut by SigmaAI: {total} characters received, the first {max} kept]"
    ));
}

/// Invisible characters that reorder or hide text: bidi embeddings, overrides and isolates,
/// directional marks, zero-width joiners aside (emoji need those).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

/// A display name: no control or bidi characters, spaces collapsed, at most
/// [`MAX_NAME_CHARS`]; `None` when nothing is left.
pub(crate) fn clean_name(name: &str) -> Option<String> {
    clean(name, MAX_NAME_CHARS)
}

fn clean_short(s: &str) -> Option<String> {
    clean(s, MAX_SHORT_CHARS)
}

fn clean(s: &str, max: usize) -> Option<String> {
    let kept: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| !is_bidi_control(*c))
        .collect();
    let out: String = kept
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect();
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_overrides_and_controls_and_are_capped() {
        assert_eq!(
            clean_name("Ana\u{202E}gpj.exe\0\n Silva").as_deref(),
            Some("Anagpj.exe Silva")
        );
        assert_eq!(clean_name("\u{202E}\u{2066}  ").as_deref(), None);
        assert_eq!(
            clean_name(&"x".repeat(200_000)).unwrap().chars().count(),
            MAX_NAME_CHARS
        );
        // Emoji sequences (zero-width joiner) survive.
        assert_eq!(clean_name("Bia 👩‍⚕️").as_deref(), Some("Bia 👩‍⚕️"));
    }

    #[test]
    fn long_text_keeps_its_start_and_says_it_was_cut() {
        let mut t = "é".repeat(5000);
        cut_long(&mut t, MAX_TEXT_CHARS);
        assert!(t.starts_with(&"é".repeat(MAX_TEXT_CHARS)));
        assert!(t.ends_with("[cut by SigmaAI: 5000 characters received, the first 4096 kept]"));
        let mut short = "oi\0 tudo bem".to_owned();
        cut_long(&mut short, MAX_TEXT_CHARS);
        assert_eq!(short, "oi tudo bem");
    }
}
