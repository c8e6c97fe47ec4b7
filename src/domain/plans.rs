//! Plans are static data: the pricing page, retention bounds and limits all read them here.
//! Stripe only maps subscriptions onto them.

/// The AI providers a plan may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ProviderAccess {
    /// The offline knowledge-base answerer and the tenant's own API keys.
    OfflineAndOwnKeys,
    /// Also the platform's provider keys.
    AllProviders,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) id: &'static str,
    /// Monthly price in US cents.
    pub(crate) monthly_price_cents: u32,
    pub(crate) seats: u32,
    pub(crate) channels: u32,
    pub(crate) ai_messages_per_month: u32,
    /// Default (and maximum) message retention, in years. Tenants may choose less.
    pub(crate) retention_years: u16,
    pub(crate) providers: ProviderAccess,
    /// The environment variable naming this plan's Stripe price id.
    pub(crate) stripe_price_env: &'static str,
}

/// The shortest message retention a tenant may choose.
pub(crate) const MIN_RETENTION_DAYS: u32 = 30;

impl Plan {
    pub(crate) fn retention_days(&self) -> u32 {
        u32::from(self.retention_years) * 365
    }

    /// The translation key of the plan's name.
    pub(crate) fn name_key(&self) -> String {
        format!("plan.{}.name", self.id)
    }
}

pub(crate) const PLANS: &[Plan] = &[
    Plan {
        id: "starter",
        monthly_price_cents: 4_900,
        seats: 3,
        channels: 1,
        ai_messages_per_month: 1_000,
        retention_years: 1,
        providers: ProviderAccess::OfflineAndOwnKeys,
        stripe_price_env: "SIGMAAI_STRIPE_PRICE_STARTER",
    },
    Plan {
        id: "clinic",
        monthly_price_cents: 14_900,
        seats: 10,
        channels: 3,
        ai_messages_per_month: 10_000,
        retention_years: 2,
        providers: ProviderAccess::AllProviders,
        stripe_price_env: "SIGMAAI_STRIPE_PRICE_CLINIC",
    },
    Plan {
        id: "enterprise",
        monthly_price_cents: 49_900,
        seats: 50,
        channels: 10,
        ai_messages_per_month: 100_000,
        retention_years: 3,
        providers: ProviderAccess::AllProviders,
        stripe_price_env: "SIGMAAI_STRIPE_PRICE_ENTERPRISE",
    },
];

/// The plan a new tenant starts on.
pub(crate) const DEFAULT_PLAN: &str = "starter";

pub(crate) fn by_id(id: &str) -> Option<&'static Plan> {
    PLANS.iter().find(|p| p.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_defaults_span_one_to_three_years() {
        let years: Vec<u16> = PLANS.iter().map(|p| p.retention_years).collect();
        assert_eq!(years, vec![1, 2, 3]);
        assert!(by_id(DEFAULT_PLAN).is_some());
        assert!(
            PLANS
                .iter()
                .all(|p| p.retention_days() > MIN_RETENTION_DAYS)
        );
    }
}
