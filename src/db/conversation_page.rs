//! The conversation page's reads, each in one statement: its opening read (the conversation,
//! its contact and its channel, three primary-key probes; and the read mark), and what the
//! reply box offers (the latest draft, members, canned replies, templates).

use sqlx::{FromRow, PgConnection, Row, types::Json};
use uuid::Uuid;

use super::{
    ai::Draft, canned::Canned, channels::Channel, contacts::Contact, conversations::Conversation,
    memberships::Member, templates::Template,
};

/// The conversation with its contact and (unless deleted) its channel; `None` when the
/// conversation or its contact is not this tenant's (row-level security), as the three
/// separate reads answered. With `mark_read`, the same statement marks the conversation read
/// (as `conversations::mark_read`); the row returned is as it was before, its unread count
/// included (the page's badge subtracts it).
pub(crate) async fn open(
    conn: &mut PgConnection,
    id: Uuid,
    mark_read: bool,
) -> sqlx::Result<Option<(Conversation, Contact, Option<Channel>)>> {
    let Some(r) = sqlx::query(
        r#"WITH read AS (
               UPDATE conversations SET unread_count = 0 WHERE id = $1 AND unread_count <> 0 AND $2
           )
           SELECT cv.id, cv.channel_id, cv.contact_id, cv.is_group, cv.group_name_sealed, cv.status,
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
    .bind(mark_read)
    .fetch_optional(conn)
    .await?
    else {
        return Ok(None);
    };
    let conversation = Conversation::from_prefixed_row(&r, "", r.try_get("id")?)?;
    let contact = Contact::from_prefixed_row(&r, "ct_", conversation.contact_id)?;
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

/// What the reply box and the thread need besides the messages, in one statement: the
/// conversation's latest draft (`drafts_conversation`), the tenant's members (the assignee
/// list; who approved the AI's messages), its canned replies and the channel's approved
/// templates. Each list in the order its own read gave it (`memberships::members`,
/// `canned::list`, `templates::for_channel`, `ai::latest_for_conversation`): four round
/// trips before.
pub(crate) struct ReplyBox {
    pub(crate) latest_draft: Option<Draft>,
    pub(crate) members: Vec<Member>,
    pub(crate) canned: Vec<Canned>,
    pub(crate) templates: Vec<Template>,
}

pub(crate) async fn reply_box(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    channel_id: Uuid,
) -> sqlx::Result<ReplyBox> {
    let r = sqlx::query(
        r#"SELECT d.id, d.conversation_id, d.contact_id, d.reply_to_message_id, d.state,
                  d.original_sealed, d.final_sealed, d.escalation_reason, d.provider, d.model,
                  d.prompt_version, d.knowledge_ids, d.input_tokens, d.output_tokens, d.latency_ms,
                  d.auto_sent, d.decided_by, d.decided_at, d.reject_reason, d.edited,
                  d.sent_message_id, d.created_at, d.source_changed,
                  (SELECT COALESCE(json_agg(json_build_object('user_id', m.user_id, 'name', u.name,
                                                              'email', u.email, 'role', m.role,
                                                              'created_at', m.created_at)
                                            ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1
                                                     WHEN 'reviewer' THEN 2 ELSE 3 END, u.name), '[]')
                   FROM memberships m JOIN users u ON u.id = m.user_id
                   WHERE m.tenant_id = app_current_tenant()) AS members,
                  (SELECT COALESCE(json_agg(json_build_object('id', id, 'title', title, 'body', body)
                                            ORDER BY title), '[]')
                   FROM canned_replies) AS canned,
                  (SELECT COALESCE(json_agg(json_build_object('id', id, 'name', name, 'language', language,
                                                              'body', body, 'param_count', param_count)
                                            ORDER BY name, language), '[]')
                   FROM message_templates WHERE channel_id = $2) AS templates
           FROM (SELECT 1) one
           LEFT JOIN LATERAL (
               SELECT * FROM drafts WHERE tenant_id = app_current_tenant() AND conversation_id = $1
               ORDER BY created_at DESC, id DESC LIMIT 1
           ) d ON true"#,
    )
    .bind(conversation_id)
    .bind(channel_id)
    .fetch_one(conn)
    .await?;
    let latest_draft = match r.try_get::<Option<Uuid>, _>("id")? {
        Some(_) => Some(Draft::from_row(&r)?),
        None => None,
    };
    let Json(members) = r.try_get("members")?;
    let Json(canned) = r.try_get("canned")?;
    let Json(templates) = r.try_get("templates")?;
    Ok(ReplyBox {
        latest_draft,
        members,
        canned,
        templates,
    })
}
