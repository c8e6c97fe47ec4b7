//! The conversation page's opening read: the conversation, its contact and its channel in
//! one statement (three primary-key probes, one round trip instead of three).

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{channels::Channel, contacts::Contact, conversations::Conversation};

/// The conversation with its contact and (unless deleted) its channel; `None` when the
/// conversation or its contact is not this tenant's (row-level security), as the three
/// separate reads answered.
pub(crate) async fn open(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<(Conversation, Contact, Option<Channel>)>> {
    let Some(r) = sqlx::query(
        r#"SELECT cv.id, cv.channel_id, cv.contact_id, cv.is_group, cv.group_name_sealed, cv.status,
                  cv.ownership, cv.policy_override, cv.assigned_to, cv.labels, cv.unread_count,
                  cv.last_message_at, cv.last_inbound_at, cv.created_at, cv.attention,
                  ct.phone_index AS ct_phone_index, ct.lid_index AS ct_lid_index,
                  ct.phone_sealed AS ct_phone_sealed, ct.name_sealed AS ct_name_sealed,
                  ct.profile_sealed AS ct_profile_sealed, ct.tags AS ct_tags,
                  ct.restricted_at AS ct_restricted_at, ct.erased_at AS ct_erased_at,
                  ct.created_at AS ct_created_at,
                  ch.id AS ch_id, ch.tenant_id AS ch_tenant_id, ch.route_id AS ch_route_id,
                  ch.kind AS ch_kind, ch.name AS ch_name, ch.config AS ch_config,
                  ch.secrets_sealed AS ch_secrets_sealed, ch.health AS ch_health,
                  ch.health_detail AS ch_health_detail, ch.last_event_at AS ch_last_event_at,
                  ch.created_at AS ch_created_at
           FROM conversations cv
           JOIN contacts ct ON ct.id = cv.contact_id
           LEFT JOIN channels ch ON ch.id = cv.channel_id AND ch.deleted_at IS NULL
           WHERE cv.id = $1"#,
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let conversation = Conversation {
        id: r.try_get("id")?,
        channel_id: r.try_get("channel_id")?,
        contact_id: r.try_get("contact_id")?,
        is_group: r.try_get("is_group")?,
        group_name_sealed: r.try_get("group_name_sealed")?,
        status: r.try_get("status")?,
        ownership: r.try_get("ownership")?,
        policy_override: r.try_get("policy_override")?,
        assigned_to: r.try_get("assigned_to")?,
        labels: r.try_get("labels")?,
        unread_count: r.try_get("unread_count")?,
        last_message_at: r.try_get("last_message_at")?,
        last_inbound_at: r.try_get("last_inbound_at")?,
        created_at: r.try_get("created_at")?,
        attention: r.try_get("attention")?,
    };
    let contact = Contact {
        id: conversation.contact_id,
        phone_index: r.try_get("ct_phone_index")?,
        lid_index: r.try_get("ct_lid_index")?,
        phone_sealed: r.try_get("ct_phone_sealed")?,
        name_sealed: r.try_get("ct_name_sealed")?,
        profile_sealed: r.try_get("ct_profile_sealed")?,
        tags: r.try_get("ct_tags")?,
        restricted_at: r.try_get("ct_restricted_at")?,
        erased_at: r.try_get("ct_erased_at")?,
        created_at: r.try_get("ct_created_at")?,
    };
    let channel = match r.try_get::<Option<Uuid>, _>("ch_id")? {
        None => None,
        Some(ch_id) => Some(Channel {
            id: ch_id,
            tenant_id: r.try_get("ch_tenant_id")?,
            route_id: r.try_get("ch_route_id")?,
            kind: r.try_get("ch_kind")?,
            name: r.try_get("ch_name")?,
            config: r.try_get("ch_config")?,
            secrets_sealed: r.try_get("ch_secrets_sealed")?,
            health: r.try_get("ch_health")?,
            health_detail: r.try_get("ch_health_detail")?,
            last_event_at: r.try_get("ch_last_event_at")?,
            created_at: r.try_get("ch_created_at")?,
        }),
    };
    Ok(Some((conversation, contact, channel)))
}
