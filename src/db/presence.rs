//! Who has a conversation open right now (`review_presence`), and who is editing its draft.
//! Rows count while their heartbeat is younger than the caller's `since`.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// Someone on a conversation.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Here {
    pub(crate) user_id: Uuid,
    pub(crate) name: String,
    pub(crate) editing: bool,
    pub(crate) draft_id: Option<Uuid>,
}

/// Records a heartbeat: `edit` is `Some((draft, editing))` from the page's script, `None`
/// when the page is drawn (which keeps whatever editing state the script last sent). Returns
/// what was recorded before (`None`: the user was not here), so the caller can tell others
/// only when something they see changed.
pub(crate) async fn touch(
    conn: &mut PgConnection,
    conversation: Uuid,
    user: Uuid,
    edit: Option<(Option<Uuid>, bool)>,
    now: OffsetDateTime,
    since: OffsetDateTime,
) -> sqlx::Result<Option<(bool, Option<Uuid>)>> {
    let before: Option<(bool, Option<Uuid>, OffsetDateTime)> = sqlx::query_as(
        "SELECT editing, draft_id, seen_at FROM review_presence
         WHERE tenant_id = app_current_tenant() AND conversation_id = $1 AND user_id = $2
         FOR UPDATE",
    )
    .bind(conversation)
    .bind(user)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO review_presence (tenant_id, conversation_id, user_id, draft_id, editing, seen_at)
         VALUES (app_current_tenant(), $1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, conversation_id, user_id)
         DO UPDATE SET draft_id = CASE WHEN $6 THEN EXCLUDED.draft_id ELSE review_presence.draft_id END,
                       editing = CASE WHEN $6 THEN EXCLUDED.editing ELSE review_presence.editing END,
                       seen_at = EXCLUDED.seen_at",
    )
    .bind(conversation)
    .bind(user)
    .bind(edit.and_then(|(d, on)| d.filter(|_| on)))
    .bind(edit.is_some_and(|(d, on)| on && d.is_some()))
    .bind(now)
    .bind(edit.is_some())
    .execute(&mut *conn)
    .await?;
    Ok(before
        .filter(|(_, _, seen)| *seen >= since)
        .map(|(e, d, _)| (e, d)))
}

/// A page drawn by `user` on `conversation`: records the heartbeat as [`touch`] does with
/// no edit (the editing state the script last sent is kept), and reads who else is here, as
/// [`others`] does, in one statement (three round trips before). Returns whether the user
/// was already here (a heartbeat at or after `since`), and the others.
pub(crate) async fn on_page(
    conn: &mut PgConnection,
    conversation: Uuid,
    user: Uuid,
    now: OffsetDateTime,
    since: OffsetDateTime,
) -> sqlx::Result<(bool, Vec<Here>)> {
    #[derive(sqlx::FromRow)]
    struct Row {
        seen_before: Option<OffsetDateTime>,
        user_id: Option<Uuid>,
        name: Option<String>,
        editing: Option<bool>,
        draft_id: Option<Uuid>,
    }
    // `before` is read (and its row locked) before `up` writes: `up` reads from it.
    let rows: Vec<Row> = sqlx::query_as(
        "WITH before AS (
             SELECT seen_at FROM review_presence
             WHERE tenant_id = app_current_tenant() AND conversation_id = $1 AND user_id = $2
             FOR UPDATE
         ), up AS (
             INSERT INTO review_presence (tenant_id, conversation_id, user_id, draft_id, editing, seen_at)
             SELECT app_current_tenant(), $1, $2, NULL, false, $3 FROM (SELECT count(*) FROM before) b
             ON CONFLICT (tenant_id, conversation_id, user_id) DO UPDATE SET seen_at = EXCLUDED.seen_at
             RETURNING 1
         )
         SELECT (SELECT seen_at FROM before) AS seen_before, o.user_id, o.name, o.editing, o.draft_id
         FROM (SELECT count(*) FROM up) w
         LEFT JOIN LATERAL (
             SELECT p.user_id, u.name, p.editing, p.draft_id
             FROM review_presence p JOIN users u ON u.id = p.user_id
             WHERE p.tenant_id = app_current_tenant() AND p.conversation_id = $1
               AND p.user_id <> $2 AND p.seen_at >= $4
         ) o ON true
         ORDER BY o.editing DESC, o.name",
    )
    .bind(conversation)
    .bind(user)
    .bind(now)
    .bind(since)
    .fetch_all(conn)
    .await?;
    let was_here = rows
        .first()
        .and_then(|r| r.seen_before)
        .is_some_and(|seen| seen >= since);
    let others = rows
        .into_iter()
        .filter_map(|r| {
            Some(Here {
                user_id: r.user_id?,
                name: r.name?,
                editing: r.editing?,
                draft_id: r.draft_id,
            })
        })
        .collect();
    Ok((was_here, others))
}

/// The user left the conversation (closed the page or went elsewhere).
pub(crate) async fn leave(
    conn: &mut PgConnection,
    conversation: Uuid,
    user: Uuid,
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "DELETE FROM review_presence
         WHERE tenant_id = app_current_tenant() AND conversation_id = $1 AND user_id = $2",
    )
    .bind(conversation)
    .bind(user)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Everyone but `me` on these conversations since `since`, by conversation.
pub(crate) async fn others(
    conn: &mut PgConnection,
    conversations: &[Uuid],
    me: Uuid,
    since: OffsetDateTime,
) -> sqlx::Result<Vec<(Uuid, Here)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        conversation_id: Uuid,
        #[sqlx(flatten)]
        here: Here,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT p.conversation_id, p.user_id, u.name, p.editing, p.draft_id
         FROM review_presence p JOIN users u ON u.id = p.user_id
         WHERE p.tenant_id = app_current_tenant() AND p.conversation_id = ANY($1)
           AND p.user_id <> $2 AND p.seen_at >= $3
         ORDER BY p.editing DESC, u.name",
    )
    .bind(conversations)
    .bind(me)
    .bind(since)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.conversation_id, r.here))
        .collect())
}

/// The name of someone other than `me` editing this draft since `since`.
pub(crate) async fn editor(
    conn: &mut PgConnection,
    draft: Uuid,
    me: Uuid,
    since: OffsetDateTime,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT u.name FROM review_presence p JOIN users u ON u.id = p.user_id
         WHERE p.tenant_id = app_current_tenant() AND p.draft_id = $1 AND p.editing
           AND p.user_id <> $2 AND p.seen_at >= $3
         ORDER BY p.seen_at DESC LIMIT 1",
    )
    .bind(draft)
    .bind(me)
    .bind(since)
    .fetch_optional(conn)
    .await
}

/// Drops heartbeats older than `before` (the session sweep calls it).
pub(crate) async fn prune(conn: &mut PgConnection, before: OffsetDateTime) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM review_presence WHERE seen_at < $1")
            .bind(before)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Whether opening an unassigned conversation assigns it to the reviewer.
pub(crate) async fn assign_on_open(conn: &mut PgConnection) -> sqlx::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT assign_on_open FROM tenant_settings WHERE tenant_id = app_current_tenant()",
    )
    .fetch_optional(conn)
    .await?
    .unwrap_or(true))
}

pub(crate) async fn set_assign_on_open(conn: &mut PgConnection, on: bool) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tenant_settings SET assign_on_open = $1 WHERE tenant_id = app_current_tenant()",
    )
    .bind(on)
    .execute(conn)
    .await?;
    Ok(())
}
