//! Account and tenancy types, parsed once at the edge ("parse, don't validate").

use std::fmt;

use time::Duration;

/// A session ends after this long without a request.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::minutes(30);
/// …and after this long in any case.
pub(crate) const ABSOLUTE_TIMEOUT: Duration = Duration::hours(12);

/// A normalized (trimmed, lowercased) e-mail address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Email(String);

impl Email {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for Email {
    type Error = &'static str;

    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        let e = raw.trim().to_lowercase();
        let (local, domain) = e.split_once('@').ok_or("form.email.invalid")?;
        let ok = !local.is_empty()
            && e.len() <= 254
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !e.contains(char::is_whitespace)
            && e.matches('@').count() == 1;
        if ok {
            Ok(Email(e))
        } else {
            Err("form.email.invalid")
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's URL name: 3–40 of `a-z0-9-`, not starting or ending with `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TenantSlug(String);

/// Slugs that would collide with our own routes or mislead.
const RESERVED_SLUGS: &[&str] = &[
    "admin", "api", "app", "login", "logout", "signup", "static", "webhooks", "www", "sigmaai",
    "support", "help", "status", "new",
];

impl TenantSlug {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// A slug suggested from a business name ("Clínica São José" → "clinica-sao-jose").
    pub(crate) fn suggest(name: &str) -> String {
        let mut out = String::new();
        for c in fold_accents(&name.to_lowercase()).chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        let trimmed: String = out.trim_matches('-').chars().take(40).collect();
        trimmed.trim_end_matches('-').to_owned()
    }
}

impl TryFrom<&str> for TenantSlug {
    type Error = &'static str;

    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        let s = raw.trim().to_lowercase();
        let valid = (3..=40).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if !valid {
            return Err("form.slug.invalid");
        }
        if RESERVED_SLUGS.contains(&s.as_str()) {
            return Err("form.slug.reserved");
        }
        Ok(TenantSlug(s))
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Folds the accents Portuguese and Spanish use (for slugs; the blind index has its own).
pub(crate) fn fold_accents(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            other => other,
        })
        .collect()
}

/// A new password that meets our policy. Never printed.
pub(crate) struct NewPassword(String);

pub(crate) const MIN_PASSWORD_CHARS: usize = 10;
/// Argon2 cost grows with input: cap it so a huge password can't be used to burn CPU.
pub(crate) const MAX_PASSWORD_BYTES: usize = 256;

impl NewPassword {
    pub(crate) fn parse(raw: &str, email: Option<&Email>) -> Result<NewPassword, &'static str> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err("form.password.short");
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err("form.password.long");
        }
        if email.is_some_and(|e| raw.to_lowercase() == e.as_str()) {
            return Err("form.password.is_email");
        }
        if raw.chars().collect::<std::collections::HashSet<_>>().len() < 4 {
            return Err("form.password.weak");
        }
        Ok(NewPassword(raw.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// Membership roles, in increasing power. The permission matrix (DESIGN.md): viewer reads;
/// reviewer approves, replies, takes over, assigns; admin manages channels, knowledge, MCP,
/// privacy requests, members and settings; owner also billing and termination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Role {
    Viewer,
    Reviewer,
    Admin,
    Owner,
}

impl Role {
    pub(crate) const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Reviewer, Role::Viewer];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub(crate) fn label_key(self) -> &'static str {
        match self {
            Role::Viewer => "role.viewer",
            Role::Reviewer => "role.reviewer",
            Role::Admin => "role.admin",
            Role::Owner => "role.owner",
        }
    }

    pub(crate) fn at_least(self, needed: Role) -> bool {
        self >= needed
    }
}

impl TryFrom<&str> for Role {
    type Error = &'static str;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "reviewer" => Ok(Role::Reviewer),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            _ => Err("form.role.invalid"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_normalize_and_reject_garbage() {
        assert_eq!(
            Email::try_from("  Ana@Clinic.COM ").unwrap().as_str(),
            "ana@clinic.com"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@x.com",
            "a b@x.com",
            "a@x",
            "a@@x.com",
            "a@.com",
        ] {
            assert!(Email::try_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slugs_are_checked_and_suggested() {
        assert_eq!(TenantSlug::suggest("Clínica São José!"), "clinica-sao-jose");
        assert!(TenantSlug::try_from("clinica-sao-jose").is_ok());
        assert!(TenantSlug::try_from("ab").is_err());
        assert!(TenantSlug::try_from("-abc").is_err());
        assert!(TenantSlug::try_from("a_b_c").is_err());
        assert_eq!(TenantSlug::try_from("admin"), Err("form.slug.reserved"));
    }

    #[test]
    fn password_policy() {
        let e = Email::try_from("ana@clinic.com").unwrap();
        assert!(NewPassword::parse("short", None).is_err());
        assert!(NewPassword::parse("aaaaaaaaaaaa", None).is_err());
        assert!(NewPassword::parse("ana@clinic.com", Some(&e)).is_err());
        assert!(NewPassword::parse(&"x1y2".repeat(70), None).is_err());
        assert!(NewPassword::parse("correct horse battery", Some(&e)).is_ok());
        assert_eq!(
            format!(
                "{:?}",
                NewPassword::parse("correct horse battery", None).unwrap()
            ),
            "NewPassword(***)"
        );
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Owner.at_least(Role::Admin));
        assert!(Role::Reviewer.at_least(Role::Viewer));
        assert!(!Role::Viewer.at_least(Role::Reviewer));
    }
}
