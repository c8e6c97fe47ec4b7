//! Conversations: one per chat per channel, listed newest first with keyset pagination.

use sqlx::{PgConnection, Row, postgres::PgRow};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::conversation::Ownership;

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Conversation {
    pub(crate) id: Uuid,
    pub(crate) channel_id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) is_group: bool,
    pub(crate) group_name_sealed: Option<Vec<u8>>,
    pub(crate) status: String,
    pub(crate) ownership: String,
    pub(crate) policy_override: Option<String>,
    pub(crate) assigned_to: Option<Uuid>,
    pub(crate) labels: Vec<String>,
    pub(crate) unread_count: i32,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) last_message_at: OffsetDateTime,
    pub(crate) last_inbound_at: Option<OffsetDateTime>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) created_at: OffsetDateTime,
    /// Why a person must look at it (an escalation), if so.
    pub(crate) attention: Option<String>,
}

impl Conversation {
    /// The conversation's columns read from a wider row, each named `{prefix}column` (`""`
    /// when the statement selects them as they are, `cv_` beside a draft's); `id` comes from
    /// the caller.
    pub(crate) fn from_prefixed_row(
        r: &PgRow,
        prefix: &str,
        id: Uuid,
    ) -> sqlx::Result<Conversation> {
        let col = |name: &str| format!("{prefix}{name}");
        Ok(Conversation {
            id,
            channel_id: r.try_get(col("channel_id").as_str())?,
            contact_id: r.try_get(col("contact_id").as_str())?,
            is_group: r.try_get(col("is_group").as_str())?,
            group_name_sealed: r.try_get(col("group_name_sealed").as_str())?,
            status: r.try_get(col("status").as_str())?,
            ownership: r.try_get(col("ownership").as_str())?,
            policy_override: r.try_get(col("policy_override").as_str())?,
            assigned_to: r.try_get(col("assigned_to").as_str())?,
            labels: r.try_get(col("labels").as_str())?,
            unread_count: r.try_get(col("unread_count").as_str())?,
            last_message_at: r.try_get(col("last_message_at").as_str())?,
            last_inbound_at: r.try_get(col("last_inbound_at").as_str())?,
            created_at: r.try_get(col("created_at").as_str())?,
            attention: r.try_get(col("attention").as_str())?,
        })
    }
}

pub(crate) struct NewConversation<'a> {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) channel_id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) chat_index: &'a str,
    pub(crate) is_group: bool,
}

/// The conversation a message belongs to, and whether its reply address is still unset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Upserted {
    pub(crate) id: Uuid,
    pub(crate) needs_chat: bool,
}

/// A conversation ingestion creates, with its reply address already sealed (under its
/// new id).
pub(crate) struct NewConversationWithChat<'a> {
    pub(crate) conversation: NewConversation<'a>,
    pub(crate) chat_sealed: &'a [u8],
    pub(crate) at: OffsetDateTime,
    /// What the batch's inbound messages to a new chat make of it, set at insert so the
    /// messages' insert need not update the row it just created (a non-HOT update, as
    /// `last_message_at` is indexed): their count, the newest's time, and the latest of
    /// that and `at`.
    pub(crate) unread: i32,
    pub(crate) last_inbound_at: Option<OffsetDateTime>,
    pub(crate) last_message_at: OffsetDateTime,
}

/// The conversations of a batch's new chats, created in one statement (in the caller's
/// key order, the order every writer locks in). A chat created meanwhile by a concurrent
/// delivery is waited for and returned as it is (its id, and whether its reply address is
/// still unset); one created here already has its address. In the order given.
pub(crate) async fn upsert_many(
    conn: &mut PgConnection,
    rows: &[NewConversationWithChat<'_>],
) -> sqlx::Result<Vec<Upserted>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let col =
        |f: &dyn Fn(&NewConversationWithChat<'_>) -> Uuid| rows.iter().map(f).collect::<Vec<_>>();
    let ids = col(&|r| r.conversation.id);
    let tenants = col(&|r| r.conversation.tenant_id);
    let channels = col(&|r| r.conversation.channel_id);
    let contacts = col(&|r| r.conversation.contact_id);
    let chats: Vec<&str> = rows.iter().map(|r| r.conversation.chat_index).collect();
    let groups: Vec<bool> = rows.iter().map(|r| r.conversation.is_group).collect();
    let sealed: Vec<&[u8]> = rows.iter().map(|r| r.chat_sealed).collect();
    let at: Vec<OffsetDateTime> = rows.iter().map(|r| r.at).collect();
    let unread: Vec<i32> = rows.iter().map(|r| r.unread).collect();
    let inbound_at: Vec<Option<OffsetDateTime>> = rows.iter().map(|r| r.last_inbound_at).collect();
    let last_at: Vec<OffsetDateTime> = rows.iter().map(|r| r.last_message_at).collect();
    let found: Vec<(Uuid, Uuid, String, bool)> = sqlx::query_as(
        r#"INSERT INTO conversations (id, tenant_id, channel_id, contact_id, chat_index, is_group, chat_sealed, last_message_at,
                                      created_at, unread_count, last_inbound_at)
           SELECT t.id, t.tenant_id, t.channel_id, t.contact_id, t.chat_index, t.is_group, t.chat_sealed, t.last_at, t.at,
                  t.unread, t.inbound_at
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::bool[], $7::bytea[], $8::timestamptz[],
                       $9::int4[], $10::timestamptz[], $11::timestamptz[])
                WITH ORDINALITY AS t(id, tenant_id, channel_id, contact_id, chat_index, is_group, chat_sealed, at, unread,
                                     inbound_at, last_at, n)
           ORDER BY t.n
           ON CONFLICT (tenant_id, channel_id, chat_index) DO UPDATE SET chat_index = EXCLUDED.chat_index
           RETURNING id, channel_id, chat_index, chat_sealed IS NULL"#,
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&channels)
    .bind(&contacts)
    .bind(&chats)
    .bind(&groups)
    .bind(&sealed)
    .bind(&at)
    .bind(&unread)
    .bind(&inbound_at)
    .bind(&last_at)
    .fetch_all(conn)
    .await?;
    // RETURNING's order is not promised: match the answers to the keys.
    let by_key: std::collections::HashMap<(Uuid, String), Upserted> = found
        .into_iter()
        .map(|(id, channel, chat, needs_chat)| ((channel, chat), Upserted { id, needs_chat }))
        .collect();
    rows.iter()
        .map(|r| {
            let c = &r.conversation;
            by_key
                .get(&(c.channel_id, c.chat_index.to_owned()))
                .copied()
                .ok_or_else(|| sqlx::Error::Protocol("a new conversation was not returned".into()))
        })
        .collect()
}

/// The existing conversations of these (channel, chat index) pairs, locked for update in
/// the keys' order: sorted by the caller, so group commit's concurrent transactions take
/// these locks in one order and cannot deadlock on each other's conversations. One
/// unique-index probe per key, whatever the planner thinks of the tenant's size.
pub(crate) async fn find_many_for_update(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    keys: &[(Uuid, String)],
) -> sqlx::Result<Vec<(Uuid, String, Upserted)>> {
    let channels: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
    let chats: Vec<String> = keys.iter().map(|k| k.1.clone()).collect();
    let rows = sqlx::query!(
        r#"SELECT c.id AS "id!", c.channel_id AS "channel_id!", c.chat_index AS "chat_index!",
                  c.needs_chat AS "needs_chat!"
           FROM unnest($2::uuid[], $3::text[]) WITH ORDINALITY AS k(channel_id, chat_index, n)
           CROSS JOIN LATERAL (
               SELECT id, channel_id, chat_index, chat_sealed IS NULL AS needs_chat FROM conversations
               WHERE tenant_id = $1 AND channel_id = k.channel_id AND chat_index = k.chat_index
               FOR NO KEY UPDATE
           ) c
           ORDER BY k.n"#,
        tenant_id,
        &channels,
        &chats
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let found = Upserted {
                id: r.id,
                needs_chat: r.needs_chat,
            };
            (r.channel_id, r.chat_index, found)
        })
        .collect())
}

/// Records where replies go, the first time it is known (`upsert` says when that is).
pub(crate) async fn set_chat(conn: &mut PgConnection, id: Uuid, sealed: &[u8]) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE conversations SET chat_sealed = $2 WHERE id = $1 AND chat_sealed IS NULL",
        id,
        sealed
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces where replies go (the customer changed number).
pub(crate) async fn replace_chat(
    conn: &mut PgConnection,
    id: Uuid,
    sealed: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE conversations SET chat_sealed = $2 WHERE id = $1",
        id,
        sealed
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A group's subject, sealed under the tenant key (AAD conversations/group_name/<id>).
pub(crate) async fn set_group_name(
    conn: &mut PgConnection,
    id: Uuid,
    sealed: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE conversations SET group_name_sealed = $2 WHERE id = $1 AND is_group",
        id,
        sealed
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn chat(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar!("SELECT chat_sealed FROM conversations WHERE id = $1", id)
            .fetch_optional(conn)
            .await?
            .flatten(),
    )
}

pub(crate) async fn note_outbound(
    conn: &mut PgConnection,
    id: Uuid,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE conversations SET last_message_at = GREATEST(last_message_at, $2) WHERE id = $1",
        id,
        at
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Conversation>> {
    sqlx::query_as!(
        Conversation,
        r#"SELECT id, channel_id, contact_id, is_group, group_name_sealed, status, ownership, policy_override,
                  assigned_to, labels, unread_count, last_message_at, last_inbound_at, created_at, attention
           FROM conversations WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Several conversations in one round trip (the review queue's cards).
pub(crate) async fn get_many(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Conversation>> {
    sqlx::query_as::<_, Conversation>(
        r#"SELECT id, channel_id, contact_id, is_group, group_name_sealed, status, ownership, policy_override,
                  assigned_to, labels, unread_count, last_message_at, last_inbound_at, created_at, attention
           FROM conversations WHERE id = ANY($1)"#,
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

#[derive(Clone, Debug, Default)]
pub(crate) struct ListFilter {
    pub(crate) status: Option<String>,
    pub(crate) unread_only: bool,
    pub(crate) assigned_to: Option<Uuid>,
    /// Only conversations nobody is assigned to.
    pub(crate) unassigned: bool,
    /// Only conversations waiting for a person (an escalation or a rejected draft).
    pub(crate) escalated: bool,
    /// Only emergencies still waiting for a person.
    pub(crate) urgent: bool,
    /// Only conversations whose customer wrote last, before this instant (unanswered).
    pub(crate) waiting_before: Option<OffsetDateTime>,
    /// Only Meta conversations whose last customer message falls in this span: WhatsApp's
    /// 24-hour window closes soon.
    pub(crate) window_between: Option<(OffsetDateTime, OffsetDateTime)>,
    /// All of these name tokens (blind index), or this phone token.
    pub(crate) name_tokens: Option<Vec<String>>,
    pub(crate) phone_index: Option<String>,
    /// Keyset cursor: rows strictly older than (last_message_at, id).
    pub(crate) before: Option<(OffsetDateTime, Uuid)>,
    pub(crate) limit: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct ListRow {
    pub(crate) id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) channel_id: Uuid,
    pub(crate) is_group: bool,
    pub(crate) status: String,
    pub(crate) ownership: String,
    pub(crate) assigned_to: Option<Uuid>,
    pub(crate) labels: Vec<String>,
    pub(crate) unread_count: i32,
    pub(crate) last_message_at: OffsetDateTime,
    pub(crate) last_inbound_at: Option<OffsetDateTime>,
    pub(crate) group_name_sealed: Option<Vec<u8>>,
    pub(crate) contact_name_sealed: Option<Vec<u8>>,
    pub(crate) contact_phone_sealed: Option<Vec<u8>>,
    pub(crate) contact_erased: bool,
    pub(crate) last_body_sealed: Option<Vec<u8>>,
    pub(crate) last_message_id: Option<Uuid>,
    pub(crate) last_kind: Option<String>,
    pub(crate) last_direction: Option<String>,
}

/// The columns of a `ListRow`, over `cv` (conversations), `ct` (its contact) and `lm` (its
/// latest message).
const LIST_COLUMNS: &str =
    "cv.id, cv.contact_id, cv.channel_id, cv.is_group, cv.status, cv.ownership,
    cv.assigned_to, cv.labels, cv.unread_count, cv.last_message_at, cv.last_inbound_at,
    cv.group_name_sealed, ct.name_sealed AS contact_name_sealed,
    ct.phone_sealed AS contact_phone_sealed, (ct.erased_at IS NOT NULL) AS contact_erased,
    lm.body_sealed AS last_body_sealed, lm.id AS last_message_id, lm.kind AS last_kind,
    lm.direction AS last_direction";

/// The latest message of each listed row: one probe of the thread index.
const LATEST_MESSAGE: &str = "LEFT JOIN LATERAL (
        SELECT m.id, m.body_sealed, m.kind, m.direction FROM messages m
        WHERE m.tenant_id = cv.tenant_id AND m.conversation_id = cv.id
        ORDER BY m.sent_at DESC, m.id DESC LIMIT 1
    ) lm ON true";

/// The filters both list queries share: parameters $1–$11 (see `bind_filters`), then the
/// keyset cursor and the page size.
const LIST_FILTERS: &str = "($1::text IS NULL OR cv.status = $1)
    AND (NOT $2 OR cv.unread_count > 0)
    AND ($3::uuid IS NULL OR cv.assigned_to = $3)
    AND (NOT $4 OR cv.assigned_to IS NULL)
    AND (NOT $5 OR cv.attention IS NOT NULL)
    AND (NOT $6 OR (cv.urgent AND cv.attention IS NOT NULL))
    AND ($7::timestamptz IS NULL OR (cv.last_inbound_at < $7 AND lm.direction = 'in'))
    AND ($8::timestamptz IS NULL OR (cv.last_inbound_at BETWEEN $8 AND $9
         AND EXISTS (SELECT 1 FROM channels ch WHERE ch.tenant_id = cv.tenant_id
                     AND ch.id = cv.channel_id AND ch.kind = 'meta')))
    AND ($10::timestamptz IS NULL OR (cv.last_message_at, cv.id) < ($10, $11::uuid))
    ORDER BY cv.last_message_at DESC, cv.id DESC
    LIMIT $12";

type ListQuery<'q> = sqlx::query::QueryAs<'q, sqlx::Postgres, ListRow, sqlx::postgres::PgArguments>;

fn bind_filters<'q>(q: ListQuery<'q>, f: &'q ListFilter) -> ListQuery<'q> {
    let (before_at, before_id) = f
        .before
        .map(|(a, i)| (Some(a), Some(i)))
        .unwrap_or((None, None));
    q.bind(f.status.as_deref())
        .bind(f.unread_only)
        .bind(f.assigned_to)
        .bind(f.unassigned)
        .bind(f.escalated)
        .bind(f.urgent)
        .bind(f.waiting_before)
        .bind(f.window_between.map(|w| w.0))
        .bind(f.window_between.map(|w| w.1))
        .bind(before_at)
        .bind(before_id)
        .bind(f.limit)
}

/// The inbox page: newest first, filtered, keyset-paginated on (last_message_at, id) so a
/// page costs the same at a million messages as at ten. Without a search the walk follows
/// the inbox index and stops after `limit` rows; with one it starts from the few matching
/// contacts instead (a rare name would otherwise mean walking most of the inbox to fill a
/// page).
pub(crate) async fn list(conn: &mut PgConnection, f: &ListFilter) -> sqlx::Result<Vec<ListRow>> {
    if f.name_tokens.is_some() || f.phone_index.is_some() {
        return search(conn, f).await;
    }
    // One primary-key probe of the contact per listed row. A plain join let the planner,
    // blind to the tenant's size under RLS, scan every contact of the tenant for each row.
    let sql = format!(
        "SELECT {LIST_COLUMNS}
         FROM conversations cv
         JOIN LATERAL (
             SELECT c.name_sealed, c.phone_sealed, c.erased_at FROM contacts c
             WHERE c.id = cv.contact_id AND c.tenant_id = cv.tenant_id LIMIT 1
         ) ct ON true
         {LATEST_MESSAGE}
         WHERE {LIST_FILTERS}"
    );
    bind_filters(sqlx::query_as::<_, ListRow>(&sql), f)
        .fetch_all(conn)
        .await
}

/// `list` for a search by name tokens or phone token: matching contacts first (GIN and
/// unique indexes), then their conversations.
async fn search(conn: &mut PgConnection, f: &ListFilter) -> sqlx::Result<Vec<ListRow>> {
    // Two index-friendly branches (an OR of optional parameters would be a sequential scan
    // in a generic plan); a NULL parameter matches nothing. Names through
    // contact_name_tokens (see its migration): every token.
    let sql = format!(
        "WITH ct AS MATERIALIZED (
             SELECT id, tenant_id, name_sealed, phone_sealed, erased_at FROM contacts
             WHERE tenant_id = app_current_tenant() AND id IN (
                 SELECT t.contact_id FROM contact_name_tokens t
                 WHERE t.tenant_id = app_current_tenant() AND t.token = ANY($13::text[])
                 GROUP BY t.contact_id
                 HAVING count(DISTINCT t.token) = (SELECT count(DISTINCT x) FROM unnest($13::text[]) x))
             UNION
             SELECT id, tenant_id, name_sealed, phone_sealed, erased_at FROM contacts
             WHERE tenant_id = app_current_tenant() AND phone_index = $14::text
         )
         SELECT {LIST_COLUMNS}
         FROM ct
         JOIN conversations cv ON cv.tenant_id = ct.tenant_id AND cv.contact_id = ct.id
         {LATEST_MESSAGE}
         WHERE {LIST_FILTERS}"
    );
    bind_filters(sqlx::query_as::<_, ListRow>(&sql), f)
        .bind(f.name_tokens.as_deref())
        .bind(f.phone_index.as_deref())
        .fetch_all(conn)
        .await
}

pub(crate) async fn unread_total(conn: &mut PgConnection) -> sqlx::Result<i64> {
    // Through `conversations_unread` (partial: open and unread only).
    sqlx::query_scalar(
        "SELECT COALESCE(sum(unread_count), 0)::bigint FROM conversations
         WHERE tenant_id = app_current_tenant() AND status = 'open' AND unread_count > 0",
    )
    .fetch_one(conn)
    .await
}

pub(crate) async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: &str,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE conversations SET status = $2 WHERE id = $1",
        id,
        status
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn set_ownership(
    conn: &mut PgConnection,
    id: Uuid,
    ownership: Ownership,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE conversations SET ownership = $2 WHERE id = $1",
        id,
        ownership.as_str()
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn set_policy(
    conn: &mut PgConnection,
    id: Uuid,
    policy: Option<&str>,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE conversations SET policy_override = $2 WHERE id = $1",
        id,
        policy
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn assign(
    conn: &mut PgConnection,
    id: Uuid,
    user: Option<Uuid>,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE conversations SET assigned_to = $2 WHERE id = $1",
        id,
        user
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Assigns an open, unassigned conversation; `false` when it is assigned or resolved already.
pub(crate) async fn assign_if_unassigned(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "UPDATE conversations SET assigned_to = $2
         WHERE id = $1 AND assigned_to IS NULL AND status = 'open'",
    )
    .bind(id)
    .bind(user)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn set_labels(
    conn: &mut PgConnection,
    id: Uuid,
    labels: &[String],
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE conversations SET labels = $2 WHERE id = $1",
        id,
        labels
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

// ---- saved inbox views ----

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct SavedView {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) query: String,
}

/// A member's saved views, by name.
pub(crate) async fn saved_views(
    conn: &mut PgConnection,
    user: Uuid,
) -> sqlx::Result<Vec<SavedView>> {
    sqlx::query_as(
        "SELECT id, name, query FROM saved_views
         WHERE tenant_id = app_current_tenant() AND user_id = $1 ORDER BY name LIMIT 50",
    )
    .bind(user)
    .fetch_all(conn)
    .await
}

/// Saves (or replaces, by name) a member's view; at most 20 per member.
pub(crate) async fn save_view(
    conn: &mut PgConnection,
    user: Uuid,
    name: &str,
    query: &str,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM saved_views WHERE tenant_id = app_current_tenant() AND user_id = $1 AND name <> $2",
    )
    .bind(user)
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    if n >= 20 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO saved_views (id, tenant_id, user_id, name, query, created_at)
         VALUES ($1, app_current_tenant(), $2, $3, $4, $5)
         ON CONFLICT (tenant_id, user_id, name) DO UPDATE SET query = EXCLUDED.query",
    )
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(name)
    .bind(query)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Deletes one of the member's own views; `false` when it is not theirs.
pub(crate) async fn delete_view(
    conn: &mut PgConnection,
    user: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "DELETE FROM saved_views WHERE tenant_id = app_current_tenant() AND user_id = $1 AND id = $2",
    )
    .bind(user)
    .bind(id)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}
