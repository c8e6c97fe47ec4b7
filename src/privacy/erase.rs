//! Erasure. The contact's data key is destroyed FIRST — from that moment every copy of
//! their data (including database backups) is unreadable — then their rows and media are
//! deleted, leaving a tombstone: when, why, by whom, and which recipients (AI providers,
//! MCP servers) the tenant must also ask to erase.

use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    db::{
        self,
        audit::Actor,
        privacy::{self as dbp, Tombstone},
    },
    privacy::Privacy,
};

/// Erases a contact; `false` when there is no such contact. Idempotent: erasing an
/// already-erased contact does nothing more.
pub(crate) async fn erase_contact(
    state: &Privacy,
    tenant_id: Uuid,
    actor: &Actor,
    contact_id: Uuid,
    reason: &str,
    request_id: Option<Uuid>,
) -> anyhow::Result<bool> {
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let Some(_contact) = db::contacts::get(&mut tx, contact_id).await? else {
        return Ok(false);
    };
    let recipients = db::ai::recipients(&mut tx, contact_id).await?;
    let media_keys = dbp::contact_media_keys(&mut tx, contact_id).await?;
    tx.commit().await?;

    // 1. Destroy the key (ledger first, then the key store, then every instance's cache).
    state
        .keys
        .destroy_contact_key(
            tenant_id,
            contact_id,
            &format!(
                "{reason}:{}",
                request_id.map(|r| r.to_string()).unwrap_or_default()
            ),
        )
        .await?;
    // 2. Delete the objects (already unreadable without the key).
    for key in &media_keys {
        state.media.delete(key).await?;
    }
    // 3. Delete the rows, keep the tombstone.
    finish(
        state,
        tenant_id,
        actor,
        contact_id,
        reason,
        request_id,
        &recipients,
        media_keys.len(),
        now,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &Privacy,
    tenant_id: Uuid,
    actor: &Actor,
    contact_id: Uuid,
    reason: &str,
    request_id: Option<Uuid>,
    recipients: &[db::ai::Recipient],
    media: usize,
    now: OffsetDateTime,
) -> anyhow::Result<bool> {
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let (messages, conversations) = dbp::delete_contact(&mut tx, contact_id).await?;
    dbp::insert_tombstone(
        &mut tx,
        Tombstone {
            tenant_id,
            contact_id,
            request_id,
            reason,
            erased_by: &actor.label,
            recipients: json!(recipients.iter().map(|r| json!({ "kind": r.kind, "name": r.name, "detail": r.detail, "last_at": r.last_at.unix_timestamp() })).collect::<Vec<_>>()),
            removed: json!({ "messages": messages, "conversations": conversations, "media": media }),
        },
        now,
    )
    .await?;
    tx.audit(
        "contact.erased",
        &contact_id.to_string(),
        json!({ "reason": reason, "request": request_id, "messages": messages }),
    )
    .await?;
    tx.commit().await?;
    state
        .live
        .publish(tenant_id, &crate::live::Event::Inbox)
        .await;
    Ok(true)
}

/// Deletes one conversation outright. If it was the contact's only conversation the whole
/// contact is erased (key destroyed); otherwise its rows and media are deleted.
pub(crate) async fn delete_conversation(
    state: &Privacy,
    tenant_id: Uuid,
    actor: &Actor,
    conversation_id: Uuid,
) -> anyhow::Result<bool> {
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    let Some(conv) = db::conversations::get(&mut tx, conversation_id).await? else {
        return Ok(false);
    };
    let others: i64 =
        sqlx::query_scalar("SELECT count(*) FROM conversations WHERE contact_id = $1 AND id <> $2")
            .bind(conv.contact_id)
            .bind(conversation_id)
            .fetch_one(&mut *tx)
            .await?;
    if others == 0 {
        tx.commit().await?;
        erase_contact(
            state,
            tenant_id,
            actor,
            conv.contact_id,
            "conversation",
            None,
        )
        .await?;
        return Ok(true);
    }
    let keys = dbp::conversation_media_keys(&mut tx, conversation_id).await?;
    tx.commit().await?;
    for key in &keys {
        state.media.delete(key).await?;
    }
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let messages = dbp::delete_conversation(&mut tx, conversation_id).await?;
    tx.audit(
        "conversation.deleted",
        &conversation_id.to_string(),
        json!({ "messages": messages }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
