//! Messages. Bodies and media references are sealed; a gateway message is stored once per
//! channel; delivery statuses only move forward.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::message::{Author, MediaState, MessageStatus};

/// The stored rank of a status word (`messages.status_rank`): see
/// [`MessageStatus::rank`], the one order statuses move in. An unknown word ranks lowest.
pub(crate) fn status_rank(status: &str) -> i16 {
    MessageStatus::parse(status).map_or(0, MessageStatus::rank)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Message {
    pub(crate) id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) channel_id: Uuid,
    pub(crate) contact_id: Uuid,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) external_id: Option<String>,
    pub(crate) direction: String,
    pub(crate) author: String,
    pub(crate) author_user_id: Option<Uuid>,
    pub(crate) kind: String,
    pub(crate) body_sealed: Option<Vec<u8>>,
    pub(crate) media_kind: Option<String>,
    pub(crate) media_mime: Option<String>,
    pub(crate) media_size: Option<i64>,
    pub(crate) media_key: Option<String>,
    pub(crate) media_state: Option<String>,
    pub(crate) media_deleted_at: Option<OffsetDateTime>,
    pub(crate) quoted_external_id: Option<String>,
    pub(crate) sender_sealed: Option<Vec<u8>>,
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) sent_at: OffsetDateTime,
    /// Sealed JSON beside the body: reactions, poll votes, a reply's id, order, referral.
    pub(crate) extra_sealed: Option<Vec<u8>>,
    pub(crate) edited_at: Option<OffsetDateTime>,
    /// Deleted for everyone: a tombstone, its content gone.
    pub(crate) deleted_at: Option<OffsetDateTime>,
    pub(crate) created_at: OffsetDateTime,
}

impl Message {
    /// Who wrote it (`None`: a value this binary does not know).
    pub(crate) fn written_by(&self) -> Option<Author> {
        Author::parse(&self.author)
    }
}

pub(crate) struct NewMessage<'a> {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) channel_id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) external_id: Option<&'a str>,
    pub(crate) direction: &'a str,
    pub(crate) author: &'a str,
    pub(crate) author_user_id: Option<Uuid>,
    pub(crate) kind: &'a str,
    pub(crate) body_sealed: Option<Vec<u8>>,
    pub(crate) media_kind: Option<&'a str>,
    pub(crate) media_mime: Option<&'a str>,
    pub(crate) media_source_sealed: Option<Vec<u8>>,
    pub(crate) media_state: Option<&'a str>,
    pub(crate) quoted_external_id: Option<&'a str>,
    pub(crate) sender_sealed: Option<Vec<u8>>,
    pub(crate) extra_sealed: Option<Vec<u8>>,
    pub(crate) status: &'a str,
    pub(crate) sent_at: OffsetDateTime,
}

/// Inserts; `false` when this gateway message was already stored (a duplicate delivery).
/// A stored inbound message also marks its conversation, in the same statement: unread,
/// open again, and the 24-hour window restarts (a duplicate changes nothing).
pub(crate) async fn insert(
    conn: &mut PgConnection,
    m: NewMessage<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    Ok(!insert_many(conn, &[(m, now)], &[]).await?.is_empty())
}

/// Inserts many messages in one statement (ingestion's group commit), each with its own
/// stored-at time, and returns the ids of those stored (duplicates are skipped, also
/// between rows of the same call). Like `insert`, stored inbound messages mark their
/// conversations, once per conversation: unread by how many arrived, open again, and the
/// 24-hour window restarted from the newest.
pub(crate) async fn insert_many(
    conn: &mut PgConnection,
    rows: &[(NewMessage<'_>, OffsetDateTime)],
    counted: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    macro_rules! col {
        ($f:expr) => {
            rows.iter().map($f).collect::<Vec<_>>()
        };
    }
    let ids = col!(|(m, _)| m.id);
    let tenants = col!(|(m, _)| m.tenant_id);
    let conversations = col!(|(m, _)| m.conversation_id);
    let channels = col!(|(m, _)| m.channel_id);
    let contacts = col!(|(m, _)| m.contact_id);
    let external = col!(|(m, _)| m.external_id.map(str::to_owned));
    let direction = col!(|(m, _)| m.direction.to_owned());
    let author = col!(|(m, _)| m.author.to_owned());
    let author_user = col!(|(m, _)| m.author_user_id);
    let kind = col!(|(m, _)| m.kind.to_owned());
    let body = col!(|(m, _)| m.body_sealed.clone());
    let media_kind = col!(|(m, _)| m.media_kind.map(str::to_owned));
    let media_mime = col!(|(m, _)| m.media_mime.map(str::to_owned));
    let media_source = col!(|(m, _)| m.media_source_sealed.clone());
    let media_state = col!(|(m, _)| m.media_state.map(str::to_owned));
    let quoted = col!(|(m, _)| m.quoted_external_id.map(str::to_owned));
    let sender = col!(|(m, _)| m.sender_sealed.clone());
    let status = col!(|(m, _)| m.status.to_owned());
    let rank = col!(|(m, _)| status_rank(m.status));
    let sent_at = col!(|(m, _)| m.sent_at);
    let created_at = col!(|(_, at)| *at);
    let extra = col!(|(m, _)| m.extra_sealed.clone());
    sqlx::query_scalar(
        r#"WITH m AS (
           INSERT INTO messages (id, tenant_id, conversation_id, channel_id, contact_id, external_id, direction, author,
                                 author_user_id, kind, body_sealed, media_kind, media_mime, media_source_sealed, media_state,
                                 quoted_external_id, sender_sealed, status, status_rank, sent_at, created_at, extra_sealed)
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[],
                                $8::text[], $9::uuid[], $10::text[], $11::bytea[], $12::text[], $13::text[], $14::bytea[],
                                $15::text[], $16::text[], $17::bytea[], $18::text[], $19::int2[], $20::timestamptz[],
                                $21::timestamptz[], $22::bytea[])
           ON CONFLICT (tenant_id, channel_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
           RETURNING id, conversation_id, direction, author, sent_at
           ), inbound AS (
           UPDATE conversations c SET unread_count = c.unread_count + i.n, status = 'open',
                  last_message_at = GREATEST(c.last_message_at, i.newest),
                  last_inbound_at = GREATEST(COALESCE(c.last_inbound_at, i.newest), i.newest)
           FROM (SELECT conversation_id, count(*)::int AS n, max(sent_at) AS newest
                 FROM m WHERE direction = 'in' AND author <> 'system' GROUP BY conversation_id) i
           WHERE c.id = i.conversation_id AND c.id <> ALL ($23::uuid[])
           RETURNING c.id
           )
           SELECT id FROM m"#,
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&conversations)
    .bind(&channels)
    .bind(&contacts)
    .bind(&external)
    .bind(&direction)
    .bind(&author)
    .bind(&author_user)
    .bind(&kind)
    .bind(&body)
    .bind(&media_kind)
    .bind(&media_mime)
    .bind(&media_source)
    .bind(&media_state)
    .bind(&quoted)
    .bind(&sender)
    .bind(&status)
    .bind(&rank)
    .bind(&sent_at)
    .bind(&created_at)
    .bind(&extra)
    .bind(counted)
    .fetch_all(conn)
    .await
}

pub(crate) async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Message>> {
    sqlx::query_as!(
        Message,
        r#"SELECT id, conversation_id, channel_id, contact_id, external_id, direction, author, author_user_id, kind,
                  body_sealed, media_kind, media_mime, media_size, media_key, media_state, media_deleted_at,
                  quoted_external_id, sender_sealed, status, error, sent_at, extra_sealed, edited_at, deleted_at,
                  created_at
           FROM messages WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The message a reaction, vote, edit or delete points at, locked for the change.
pub(crate) async fn for_change(
    conn: &mut PgConnection,
    channel_id: Uuid,
    external_id: &str,
) -> sqlx::Result<Option<Message>> {
    sqlx::query_as!(
        Message,
        r#"SELECT id, conversation_id, channel_id, contact_id, external_id, direction, author, author_user_id, kind,
                  body_sealed, media_kind, media_mime, media_size, media_key, media_state, media_deleted_at,
                  quoted_external_id, sender_sealed, status, error, sent_at, extra_sealed, edited_at, deleted_at,
                  created_at
           FROM messages WHERE channel_id = $1 AND external_id = $2 FOR UPDATE"#,
        channel_id,
        external_id
    )
    .fetch_optional(conn)
    .await
}

/// The sealed original text of an edited message.
pub(crate) async fn original(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar!("SELECT original_sealed FROM messages WHERE id = $1", id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

/// Replaces a message's sealed extra (reactions, poll votes…).
pub(crate) async fn set_extra(
    conn: &mut PgConnection,
    id: Uuid,
    extra: Option<&[u8]>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE messages SET extra_sealed = $2 WHERE id = $1 AND deleted_at IS NULL",
        id,
        extra
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An edit: the new text is shown; the first original is kept (sealed) once.
pub(crate) async fn set_edited(
    conn: &mut PgConnection,
    id: Uuid,
    body: &[u8],
    original: Option<&[u8]>,
    at: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE messages SET body_sealed = $2, original_sealed = COALESCE(original_sealed, $3),
                  edited_at = GREATEST(COALESCE(edited_at, $4), $4)
           WHERE id = $1 AND deleted_at IS NULL"#,
        id,
        body,
        original,
        at
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// "Delete for everyone": the sealed body, original, extra and media reference are
/// dropped and the row stays as a tombstone. Returns the media object to delete, if any.
pub(crate) async fn tombstone(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Option<String>>> {
    sqlx::query_scalar!(
        r#"WITH old AS (SELECT id, media_key FROM messages WHERE id = $1 AND deleted_at IS NULL FOR UPDATE)
           UPDATE messages m SET body_sealed = NULL, original_sealed = NULL, extra_sealed = NULL,
                  media_source_sealed = NULL, media_key = NULL,
                  media_state = CASE WHEN m.media_state IS NULL THEN NULL ELSE 'deleted' END,
                  media_deleted_at = CASE WHEN m.media_state IS NULL THEN NULL ELSE $2::timestamptz END,
                  deleted_at = $2
           FROM old WHERE m.id = old.id
           RETURNING old.media_key"#,
        id,
        now
    )
    .fetch_optional(conn)
    .await
}

/// When the conversation's newest inbound message was stored (our clock).
pub(crate) async fn newest_inbound_at(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar!(
        r#"SELECT created_at FROM messages WHERE conversation_id = $1 AND direction = 'in'
           ORDER BY sent_at DESC, id DESC LIMIT 1"#,
        conversation_id
    )
    .fetch_optional(conn)
    .await
}

/// The newest `limit` messages of a conversation older than the cursor, newest first.
pub(crate) async fn thread(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Message>> {
    let (at, id) = before
        .map(|(a, i)| (Some(a), Some(i)))
        .unwrap_or((None, None));
    sqlx::query_as!(
        Message,
        r#"SELECT id, conversation_id, channel_id, contact_id, external_id, direction, author, author_user_id, kind,
                  body_sealed, media_kind, media_mime, media_size, media_key, media_state, media_deleted_at,
                  quoted_external_id, sender_sealed, status, error, sent_at, extra_sealed, edited_at, deleted_at,
                  created_at
           FROM messages
           WHERE conversation_id = $1 AND ($2::timestamptz IS NULL OR (sent_at, id) < ($2, $3::uuid))
           ORDER BY sent_at DESC, id DESC LIMIT $4"#,
        conversation_id,
        at,
        id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// The newest `per` messages of each of several conversations, in one round trip (the review
/// queue's context): one index probe of `messages_thread` per conversation (LATERAL).
/// Newest first within each conversation, as [`thread`] answers them.
pub(crate) async fn latest_of_many(
    conn: &mut PgConnection,
    conversation_ids: &[Uuid],
    per: i64,
) -> sqlx::Result<Vec<Message>> {
    sqlx::query_as::<_, Message>(
        r#"SELECT m.id, m.conversation_id, m.channel_id, m.contact_id, m.external_id, m.direction, m.author,
                  m.author_user_id, m.kind, m.body_sealed, m.media_kind, m.media_mime, m.media_size, m.media_key,
                  m.media_state, m.media_deleted_at, m.quoted_external_id, m.sender_sealed, m.status, m.error,
                  m.sent_at, m.extra_sealed, m.edited_at, m.deleted_at, m.created_at
           FROM (SELECT DISTINCT unnest($1::uuid[]) AS id) c
           CROSS JOIN LATERAL (
               SELECT * FROM messages
               WHERE tenant_id = app_current_tenant() AND conversation_id = c.id
               ORDER BY sent_at DESC, id DESC LIMIT $2
           ) m
           ORDER BY m.conversation_id, m.sent_at DESC, m.id DESC"#,
    )
    .bind(conversation_ids)
    .bind(per)
    .fetch_all(conn)
    .await
}

/// Applies a gateway status report, only forwards. Returns whether anything changed.
pub(crate) async fn advance_status_by_external(
    conn: &mut PgConnection,
    channel_id: Uuid,
    external_id: &str,
    status: &str,
    error: Option<&str>,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE messages SET status = $3, status_rank = $4, error = COALESCE($5, error)
           WHERE channel_id = $1 AND external_id = $2 AND status_rank < $4"#,
        channel_id,
        external_id,
        status,
        status_rank(status),
        error
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Moves one outbound message to `status` (send job transitions), only forwards unless
/// `force` (a staff retry of a failed or unknown send).
pub(crate) async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: MessageStatus,
    external_id: Option<&str>,
    error: Option<&str>,
    force: bool,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE messages SET status = $2, status_rank = $3, external_id = COALESCE($4, external_id), error = $5
           WHERE id = $1 AND ($6 OR status_rank < $3)"#,
        id,
        status.as_str(),
        status.rank(),
        external_id,
        error,
        force
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Records where a media object is stored (or that fetching it failed).
pub(crate) async fn set_media(
    conn: &mut PgConnection,
    id: Uuid,
    state: MediaState,
    key: Option<&str>,
    size: Option<i64>,
    mime: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE messages SET media_state = $2, media_key = COALESCE($3, media_key), media_size = COALESCE($4, media_size),
                  media_mime = COALESCE($5, media_mime)
           WHERE id = $1 AND deleted_at IS NULL"#,
        id,
        state.as_str(),
        key,
        size,
        mime
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn media_source(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar!("SELECT media_source_sealed FROM messages WHERE id = $1", id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

/// What a send needs once its message is marked `sending`: the message, its channel (unless
/// deleted), the conversation's sealed chat address and whether it is a group, and a
/// template's sealed payload.
pub(crate) struct SendStart {
    pub(crate) message: Message,
    pub(crate) channel: Option<super::channels::Channel>,
    /// `(conversation id, contact id, is_group, sealed chat)` when the conversation has a chat.
    pub(crate) chat: Option<(Uuid, Uuid, bool, Vec<u8>)>,
    pub(crate) template_sealed: Option<Vec<u8>>,
}

/// Marks a queued outbound message `sending` and reads what its send needs, in one round trip
/// (the send's first transaction: committed before the gateway is called). `None` when the
/// message is not `queued` (gone, undone, or a previous attempt got further): the caller then
/// reads it to tell which.
pub(crate) async fn start_send(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<SendStart>> {
    use sqlx::{FromRow, Row};
    let row = sqlx::query(
        r#"WITH m AS (
               UPDATE messages SET status = 'sending', status_rank = $2, error = NULL
               WHERE id = $1 AND status = 'queued' AND status_rank < $2
               RETURNING id, conversation_id, channel_id, contact_id, external_id, direction, author, author_user_id,
                         kind, body_sealed, media_kind, media_mime, media_size, media_key, media_state,
                         media_deleted_at, quoted_external_id, sender_sealed, status, error, sent_at, extra_sealed,
                         edited_at, deleted_at, created_at, template_sealed)
           SELECT m.*,
                  ch.id AS ch_id, ch.tenant_id AS ch_tenant_id, ch.route_id AS ch_route_id, ch.kind AS ch_kind,
                  ch.name AS ch_name, ch.config AS ch_config, ch.secrets_sealed AS ch_secrets_sealed,
                  ch.health AS ch_health, ch.health_detail AS ch_health_detail,
                  ch.last_event_at AS ch_last_event_at, ch.created_at AS ch_created_at,
                  c.id AS conv_id, c.contact_id AS conv_contact_id, c.is_group AS conv_is_group,
                  c.chat_sealed AS conv_chat
           FROM m
           LEFT JOIN channels ch ON ch.id = m.channel_id AND ch.deleted_at IS NULL
           LEFT JOIN conversations c ON c.id = m.conversation_id"#,
    )
    .bind(id)
    .bind(MessageStatus::Sending.rank())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let channel = match row.try_get::<Option<Uuid>, _>("ch_id")? {
        Some(ch_id) => Some(super::channels::Channel {
            id: ch_id,
            tenant_id: row.try_get("ch_tenant_id")?,
            route_id: row.try_get("ch_route_id")?,
            kind: row.try_get("ch_kind")?,
            name: row.try_get("ch_name")?,
            config: row.try_get("ch_config")?,
            secrets_sealed: row.try_get("ch_secrets_sealed")?,
            health: row.try_get("ch_health")?,
            health_detail: row.try_get("ch_health_detail")?,
            last_event_at: row.try_get("ch_last_event_at")?,
            created_at: row.try_get("ch_created_at")?,
        }),
        None => None,
    };
    let chat = match (
        row.try_get::<Option<Uuid>, _>("conv_id")?,
        row.try_get::<Option<Vec<u8>>, _>("conv_chat")?,
    ) {
        (Some(conv), Some(chat)) => Some((
            conv,
            row.try_get("conv_contact_id")?,
            row.try_get("conv_is_group")?,
            chat,
        )),
        _ => None,
    };
    Ok(Some(SendStart {
        message: Message::from_row(&row)?,
        channel,
        chat,
        template_sealed: row.try_get("template_sealed")?,
    }))
}
