//! Collision safety: who else has a conversation open, who is editing its draft, and
//! assign-on-open.
//!
//! Open conversation pages and review cards send a heartbeat every [`HEARTBEAT_SECONDS`]
//! (`POST …/conversations/{id}/presence`); a heartbeat older than [`FRESH`] no longer counts.
//! The member editing a draft holds it: approving or rejecting it as someone else is refused
//! ([`DecideError::Locked`](crate::review::decide::DecideError)) until they stop, leave, or
//! their heartbeat goes stale — so a closed laptop never locks a draft for long. State lives
//! in PostgreSQL (`review_presence`), so every instance sees the same thing.

use serde_json::json;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{
    db::{self, audit, audit::Actor, presence as dbp},
    live::{self, Live},
    review::Review,
};

pub(crate) use dbp::Here;

/// How long a heartbeat counts.
pub(crate) const FRESH: Duration = Duration::seconds(45);

/// How often pages renew theirs (well inside [`FRESH`], so one lost beat changes nothing).
pub(crate) const HEARTBEAT_SECONDS: u32 = 20;

/// The oldest heartbeat that still counts at `now`.
pub(crate) fn since(now: OffsetDateTime) -> OffsetDateTime {
    now - FRESH
}

/// What a heartbeat learns: who else is here, and who holds the draft if not the caller.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Beat {
    pub(crate) others: Vec<Other>,
    /// Someone else is editing the draft the caller asked to edit; the caller does not hold it.
    pub(crate) locked_by: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub(crate) struct Other {
    pub(crate) name: String,
    pub(crate) editing: bool,
}

/// Records that `user` is on `conversation`, editing `draft` when `editing` (and nobody else
/// is). Other open pages hear of it when what they show changes. `None`: no such
/// conversation in this tenant.
pub(crate) async fn touch(
    state: &Review,
    tenant: Uuid,
    user: Uuid,
    conversation: Uuid,
    draft: Option<Uuid>,
    editing: bool,
) -> sqlx::Result<Option<Beat>> {
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    if db::conversations::get(&mut tx, conversation)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let locked_by = match draft.filter(|_| editing) {
        Some(d) => dbp::editor(&mut tx, d, user, since(now)).await?,
        None => None,
    };
    let editing = editing && draft.is_some() && locked_by.is_none();
    let before = dbp::touch(
        &mut tx,
        conversation,
        user,
        Some((draft, editing)),
        now,
        since(now),
    )
    .await?;
    let others = dbp::others(&mut tx, &[conversation], user, since(now)).await?;
    tx.commit().await?;
    let changed = match before {
        None => true,
        Some((was_editing, _)) => was_editing != editing,
    };
    if changed {
        announce(&state.live, tenant, conversation).await;
    }
    Ok(Some(Beat {
        others: others
            .into_iter()
            .map(|(_, h)| Other {
                name: h.name,
                editing: h.editing,
            })
            .collect(),
        locked_by,
    }))
}

/// The user closed the page: others stop seeing them at once.
pub(crate) async fn leave(
    state: &Review,
    tenant: Uuid,
    user: Uuid,
    conversation: Uuid,
) -> sqlx::Result<()> {
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let gone = dbp::leave(&mut tx, conversation, user).await?;
    tx.commit().await?;
    if gone {
        announce(&state.live, tenant, conversation).await;
    }
    Ok(())
}

async fn announce(live: &Live, tenant: Uuid, conversation: Uuid) {
    live.publish(tenant, &live::Event::Conversation { id: conversation })
        .await;
    live.publish(tenant, &live::Event::Review).await;
}

/// [`on_page`] and [`others_on`] for this one conversation, in one statement: whether the
/// member just arrived, and everyone else on it now.
pub(crate) async fn on_page_with_others(
    conn: &mut sqlx::PgConnection,
    user: Uuid,
    conversation: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<(bool, Vec<Here>)> {
    let (was_here, others) = dbp::on_page(conn, conversation, user, now, since(now)).await?;
    Ok((!was_here, others))
}

/// Tells the other open pages that someone arrived.
pub(crate) async fn arrived(live: &Live, tenant: Uuid, conversation: Uuid) {
    announce(live, tenant, conversation).await;
}

/// Everyone but `me` on these conversations now, by conversation (for pages being drawn).
pub(crate) async fn others_on(
    conn: &mut sqlx::PgConnection,
    conversations: &[Uuid],
    me: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<(Uuid, Here)>> {
    dbp::others(conn, conversations, me, since(now)).await
}

/// Opening an unassigned, open conversation assigns it to the reviewer who opened it, when
/// the tenant wants that (the default). Returns whether it did. Two reviewers opening it at
/// once: one wins, the other sees the first as the assignee.
pub(crate) async fn assign_on_open(
    conn: &mut sqlx::PgConnection,
    tenant: Uuid,
    actor: &Actor,
    conversation: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let Some(user) = actor.id else {
        return Ok(false);
    };
    if !dbp::assign_on_open(conn).await? {
        return Ok(false);
    }
    let taken = db::conversations::assign_if_unassigned(conn, conversation, user).await?;
    if taken {
        audit::record(
            conn,
            tenant,
            actor,
            "conversation.assigned",
            &conversation.to_string(),
            json!({ "user": user, "on_open": true }),
            now,
        )
        .await?;
        // Subscribed systems hear of it as of any assignment (outgoing webhooks).
        let assigned = json!({ "conversation_id": conversation, "assigned_to": user });
        if db::outgoing::emit(
            conn,
            tenant,
            crate::domain::events::CONVERSATION_ASSIGNED,
            &[(assigned, None)],
            now,
        )
        .await?
            > 0
        {
            db::jobs::notify_workers(conn).await?;
        }
    }
    Ok(taken)
}
