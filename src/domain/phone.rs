//! A phone number as WhatsApp addresses it: E.164 digits without the `+`.

use std::fmt;

/// A normalized phone number: 8–15 ASCII digits, country code first, no `+`
/// (what WhatsApp calls a `wa_id`, and the user part of a `…@s.whatsapp.net` JID).
///
/// It has no `Display`: logs use [`Phone::masked`], code that needs the digits says so
/// with [`Phone::as_str`]. `Debug` is masked too, so `{:?}` on an event never prints a number.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Phone(String);

pub(crate) const MIN_PHONE_DIGITS: usize = 8;
pub(crate) const MAX_PHONE_DIGITS: usize = 15;

/// JID servers that carry a phone number (`c.us` is the older web-client spelling).
const PHONE_JID_SERVERS: &[&str] = &["s.whatsapp.net", "c.us"];

impl Phone {
    /// The digits, e.g. `5511999999999`.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The last four digits behind a mask (`…9999`), safe for logs.
    pub(crate) fn masked(&self) -> String {
        let tail = &self.0[self.0.len().saturating_sub(4)..];
        format!("…{tail}")
    }

    /// The user JID WhatsApp uses for this number (`5511999999999@s.whatsapp.net`).
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests use it"))]
    pub(crate) fn jid(&self) -> String {
        format!("{}@s.whatsapp.net", self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

impl TryFrom<&str> for Phone {
    type Error = &'static str;

    /// Accepts a typed number (`+55 (11) 99999-9999`, `5511999999999`) or a user JID
    /// (`5511999999999@s.whatsapp.net`, `…@c.us`, with or without a `:device` suffix).
    /// Refuses group JIDs (`@g.us`), privacy ids (`@lid`), other servers and anything
    /// that is not a plausible E.164 number.
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        let raw = raw.trim();
        let digits: String = if let Some((user, server)) = raw.split_once('@') {
            if !PHONE_JID_SERVERS
                .iter()
                .any(|s| server.eq_ignore_ascii_case(s))
            {
                return Err("form.phone.invalid");
            }
            // `5511999999999:12@s.whatsapp.net` addresses one device of that number.
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            if user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) {
                return Err("form.phone.invalid");
            }
            user.to_owned()
        } else {
            let rest = raw.strip_prefix('+').unwrap_or(raw);
            if !rest
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
            {
                return Err("form.phone.invalid");
            }
            rest.chars().filter(char::is_ascii_digit).collect()
        };
        // Country codes never start with 0 (a leading 0 is a trunk or exit prefix).
        if !(MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&digits.len()) || digits.starts_with('0')
        {
            return Err("form.phone.invalid");
        }
        Ok(Phone(digits))
    }
}

impl TryFrom<String> for Phone {
    type Error = &'static str;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Phone::try_from(raw.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(raw: &str) -> String {
        Phone::try_from(raw).unwrap().as_str().to_owned()
    }

    #[test]
    fn phone_accepts_typed_forms() {
        assert_eq!(digits("+55 (11) 99999-9999"), "5511999999999");
        assert_eq!(digits("5511999999999"), "5511999999999");
        assert_eq!(digits("  +1 555.078.3881 "), "15550783881");
        assert_eq!(digits("+44 20 7946 0958"), "442079460958");
    }

    #[test]
    fn phone_accepts_user_jids() {
        assert_eq!(digits("5511999999999@s.whatsapp.net"), "5511999999999");
        assert_eq!(digits("5511999999999@c.us"), "5511999999999");
        assert_eq!(digits("5511999999999:12@s.whatsapp.net"), "5511999999999");
        assert_eq!(digits("5511999999999@S.WHATSAPP.NET"), "5511999999999");
    }

    #[test]
    fn phone_rejects_groups_lids_and_garbage() {
        for bad in [
            "120363025555555555@g.us",
            "5511999999999-1600000000@g.us",
            "180123456789012@lid",
            "status@broadcast",
            "120363000000000000@newsletter",
            "@s.whatsapp.net",
            "abc@s.whatsapp.net",
            "5511999999999@example.com",
            "",
            "   ",
            "+",
            "hello",
            "55 11 9999x9999",
            "1234567",          // 7 digits: too short
            "1234567890123456", // 16 digits: too long
            "05511999999999",   // leading 0 is not a country code
            "++5511999999999",
            "5511999999999\n1",
        ] {
            assert!(Phone::try_from(bad).is_err(), "accepted {bad:?}");
        }
        assert!(Phone::try_from("12345678").is_ok());
        assert!(Phone::try_from("123456789012345").is_ok());
    }

    #[test]
    fn phone_masks_for_logs_and_debug() {
        let p = Phone::try_from("+55 11 98888-7777").unwrap();
        assert_eq!(p.masked(), "…7777");
        let debug = format!("{p:?}");
        assert_eq!(debug, "Phone(…7777)");
        assert!(!debug.contains("5511988887777"));
        assert_eq!(p.jid(), "5511988887777@s.whatsapp.net");
    }
}
