//! Retention windows a tenant chooses on the privacy page.

/// How long a tenant keeps its audit log: for the life of the account (the default), or a
/// number of days bounded so that a security record is never prunable to days.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuditRetention(Option<i32>);

pub(crate) const MIN_AUDIT_DAYS: i32 = 365;
pub(crate) const MAX_AUDIT_DAYS: i32 = 3650;

impl AuditRetention {
    pub(crate) const FOR_LIFE: AuditRetention = AuditRetention(None);

    /// `None`: kept for the life of the account.
    pub(crate) fn days(self) -> Option<i32> {
        self.0
    }
}

impl TryFrom<&str> for AuditRetention {
    /// A translation key naming the problem.
    type Error = &'static str;

    /// An empty field keeps the log for life; otherwise a whole number of days within the
    /// bounds (the database refuses anything else too).
    fn try_from(raw: &str) -> Result<Self, Self::Error> {
        match raw.trim() {
            "" => Ok(AuditRetention::FOR_LIFE),
            d => d
                .parse::<i32>()
                .ok()
                .filter(|d| (MIN_AUDIT_DAYS..=MAX_AUDIT_DAYS).contains(d))
                .map(|d| AuditRetention(Some(d)))
                .ok_or("privacy.audit.bounds"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_retention_is_for_life_or_one_to_ten_years() {
        assert_eq!(AuditRetention::try_from(""), Ok(AuditRetention::FOR_LIFE));
        assert_eq!(AuditRetention::try_from("  "), Ok(AuditRetention::FOR_LIFE));
        assert_eq!(
            AuditRetention::try_from(" 365 ").map(AuditRetention::days),
            Ok(Some(365))
        );
        assert_eq!(
            AuditRetention::try_from("3650").map(AuditRetention::days),
            Ok(Some(3650))
        );
        for bad in ["364", "3651", "0", "-400", "30", "1y", "400.5"] {
            assert_eq!(
                AuditRetention::try_from(bad),
                Err("privacy.audit.bounds"),
                "{bad}"
            );
        }
    }
}
