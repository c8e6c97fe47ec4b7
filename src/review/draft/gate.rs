//! May this turn be drafted: the review policy, who owns the conversation, the contact's
//! privacy state; and whether the tenant is over a limit (the plan's monthly drafts, the
//! daily call limit, a paused subscription), in which case the turn escalates instead.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    db::{
        self,
        ai::{self as db_ai, AiSettings},
        contacts::Contact,
        conversations::Conversation,
        tenants::Tenant,
    },
    domain::{
        conversation::Ownership,
        plans,
        review::{self, Policy},
    },
    review::Review,
};

/// The conversation's review policy: its own override, else the tenant's (an unknown word
/// reads as review everything).
pub(super) fn policy(conv: &Conversation, ai_settings: &AiSettings) -> Policy {
    Policy::effective(&ai_settings.policy, conv.policy_override.as_deref())
}

/// Nothing is drafted for a human-owned or paused conversation, with the policy off, or
/// for a contact whose processing is restricted or whose data was erased (the rule is
/// `domain::review::ai_may_draft`; this reads the rows).
pub(super) fn may_draft(policy: Policy, conv: &Conversation, contact: &Contact) -> bool {
    review::ai_may_draft(
        policy,
        Ownership::parse(&conv.ownership),
        contact.restricted_at.is_none() && contact.erased_at.is_none(),
    )
}

/// The limit this turn is over, if any (the escalation reason): the plan's drafts this
/// month, a daily call limit of zero, a paused or incomplete subscription (limited access:
/// drafting waits, nothing lost), then today's calls against the daily limit.
pub(super) async fn over_limit(
    state: &Review,
    tx: &mut PgConnection,
    tenant_id: Uuid,
    tenant: Option<&Tenant>,
    ai_settings: &AiSettings,
    now: OffsetDateTime,
) -> anyhow::Result<Option<&'static str>> {
    let plan = tenant
        .and_then(|t| plans::by_id(&t.plan))
        .unwrap_or(&plans::PLANS[0]);
    let month_start = now.date().replace_day(1).unwrap_or(now.date());
    let over_limit = if db_ai::drafts_since(&mut *tx, month_start).await?
        >= i64::from(plan.ai_messages_per_month)
    {
        Some("ai_limit_month")
    } else if ai_settings
        .daily_call_limit
        .is_some_and(|l| i64::from(l) <= 0)
    {
        Some("ai_limit_day")
    } else {
        None
    };
    // A paused or incomplete subscription: limited access, drafting waits (nothing lost).
    let billing_paused = {
        let mut conn = state.db.acquire().await?;
        db::billing::get(&mut conn, tenant_id)
            .await?
            .is_some_and(|b| crate::billing::drafting_paused(&b.billing_status))
    };
    let over_limit = if billing_paused {
        Some("billing_inactive")
    } else {
        over_limit
    };
    Ok(match (over_limit, ai_settings.daily_call_limit) {
        (None, Some(l)) if db_ai::calls_on(&mut *tx, now.date()).await? >= i64::from(l) => {
            Some("ai_limit_day")
        }
        (o, _) => o,
    })
}
