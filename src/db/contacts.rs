//! Contacts (end users). Names and phone numbers are sealed; lookups go through keyed
//! blind-index tokens.

use sqlx::{PgConnection, Row, postgres::PgRow};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Contact {
    pub(crate) id: Uuid,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) phone_index: Option<String>,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) lid_index: Option<String>,
    pub(crate) phone_sealed: Option<Vec<u8>>,
    pub(crate) name_sealed: Option<Vec<u8>>,
    pub(crate) profile_sealed: Option<Vec<u8>>,
    pub(crate) tags: Vec<String>,
    pub(crate) restricted_at: Option<OffsetDateTime>,
    pub(crate) erased_at: Option<OffsetDateTime>,
    pub(crate) created_at: OffsetDateTime,
}

impl Contact {
    /// The contact's columns read from a wider row, each named `{prefix}column` (e.g. `ct_`
    /// in a statement that joins contacts to what it lists); `id` comes from the caller.
    pub(crate) fn from_prefixed_row(r: &PgRow, prefix: &str, id: Uuid) -> sqlx::Result<Contact> {
        let col = |name: &str| format!("{prefix}{name}");
        Ok(Contact {
            id,
            phone_index: r.try_get(col("phone_index").as_str())?,
            lid_index: r.try_get(col("lid_index").as_str())?,
            phone_sealed: r.try_get(col("phone_sealed").as_str())?,
            name_sealed: r.try_get(col("name_sealed").as_str())?,
            profile_sealed: r.try_get(col("profile_sealed").as_str())?,
            tags: r.try_get(col("tags").as_str())?,
            restricted_at: r.try_get(col("restricted_at").as_str())?,
            erased_at: r.try_get(col("erased_at").as_str())?,
            created_at: r.try_get(col("created_at").as_str())?,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ContactKeys {
    pub(crate) id: Uuid,
    pub(crate) phone_index: Option<String>,
    pub(crate) lid_index: Option<String>,
    pub(crate) has_name: bool,
}

/// Contacts matching a phone or a LID token (at most two: one per identity).
pub(crate) async fn find(
    conn: &mut PgConnection,
    phone_index: Option<&str>,
    lid_index: Option<&str>,
) -> sqlx::Result<Vec<ContactKeys>> {
    let phones: Vec<String> = phone_index.map(str::to_owned).into_iter().collect();
    let lids: Vec<String> = lid_index.map(str::to_owned).into_iter().collect();
    find_many(conn, &phones, &lids).await
}

/// Contacts matching any of these phone or LID tokens (ingestion looks up a whole batch's
/// senders at once): one unique-index probe per token, whatever the planner thinks of the
/// tenant's size (`LIMIT 1`, which the unique index makes true anyway, keeps the probe from
/// being flattened into a join that scans the tenant), oldest contact first.
pub(crate) async fn find_many(
    conn: &mut PgConnection,
    phone_indexes: &[String],
    lid_indexes: &[String],
) -> sqlx::Result<Vec<ContactKeys>> {
    sqlx::query_as!(
        ContactKeys,
        r#"SELECT id AS "id!", phone_index, lid_index, has_name AS "has_name!" FROM (
             SELECT c.id, c.phone_index, c.lid_index, c.name_sealed IS NOT NULL AS has_name, c.created_at
             FROM unnest($1::text[]) AS k(token) CROSS JOIN LATERAL (
                 SELECT * FROM contacts
                 WHERE tenant_id = app_current_tenant() AND phone_index = k.token AND erased_at IS NULL
                 LIMIT 1
             ) c
             UNION
             SELECT c.id, c.phone_index, c.lid_index, c.name_sealed IS NOT NULL, c.created_at
             FROM unnest($2::text[]) AS k(token) CROSS JOIN LATERAL (
                 SELECT * FROM contacts
                 WHERE tenant_id = app_current_tenant() AND lid_index = k.token AND erased_at IS NULL
                 LIMIT 1
             ) c
           ) u ORDER BY created_at"#,
        phone_indexes,
        lid_indexes
    )
    .fetch_all(conn)
    .await
}

pub(crate) struct NewContact<'a> {
    pub(crate) id: Uuid,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) tenant_id: Uuid,
    pub(crate) phone_index: Option<&'a str>,
    pub(crate) lid_index: Option<&'a str>,
    pub(crate) phone_sealed: Option<Vec<u8>>,
    pub(crate) name_sealed: Option<Vec<u8>>,
    pub(crate) name_tokens: Vec<String>,
}

/// Inserts new contacts in one statement (ingestion's new people of a batch, in the
/// caller's lock order); returns the ids inserted. One missing from the answer conflicted
/// with a contact another transaction created meanwhile (same phone or LID).
pub(crate) async fn insert_many(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    rows: &[(NewContact<'_>, OffsetDateTime)],
) -> sqlx::Result<Vec<Uuid>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|(c, _)| c.id).collect();
    let phones: Vec<Option<&str>> = rows.iter().map(|(c, _)| c.phone_index).collect();
    let lids: Vec<Option<&str>> = rows.iter().map(|(c, _)| c.lid_index).collect();
    let phone_sealed: Vec<Option<&[u8]>> = rows
        .iter()
        .map(|(c, _)| c.phone_sealed.as_deref())
        .collect();
    let name_sealed: Vec<Option<&[u8]>> =
        rows.iter().map(|(c, _)| c.name_sealed.as_deref()).collect();
    // Tokens are hex, so a space joins them unambiguously (PostgreSQL arrays of arrays
    // must be rectangular).
    let tokens: Vec<String> = rows.iter().map(|(c, _)| c.name_tokens.join(" ")).collect();
    let at: Vec<OffsetDateTime> = rows.iter().map(|(_, at)| *at).collect();
    sqlx::query_scalar(
        r#"INSERT INTO contacts (id, tenant_id, phone_index, lid_index, phone_sealed, name_sealed, name_tokens, created_at, updated_at)
           SELECT t.id, $1, t.phone, t.lid, t.ps, t.ns, string_to_array(t.tokens, ' '), t.at, t.at
           FROM unnest($2::uuid[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], $7::text[], $8::timestamptz[])
                WITH ORDINALITY AS t(id, phone, lid, ps, ns, tokens, at, n)
           ORDER BY t.n
           ON CONFLICT DO NOTHING
           RETURNING id"#,
    )
    .bind(tenant_id)
    .bind(&ids)
    .bind(&phones)
    .bind(&lids)
    .bind(&phone_sealed)
    .bind(&name_sealed)
    .bind(&tokens)
    .bind(&at)
    .fetch_all(conn)
    .await
}

/// A LID-only contact whose phone number became known.
pub(crate) async fn set_phone(
    conn: &mut PgConnection,
    id: Uuid,
    phone_index: &str,
    phone_sealed: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE contacts SET phone_index = $2, phone_sealed = $3, updated_at = $4 WHERE id = $1 AND phone_index IS NULL",
        id,
        phone_index,
        phone_sealed,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The customer moved to another number (Meta `user_changed_number`): the contact, its
/// conversations and its history follow. `false` if another contact already has it.
pub(crate) async fn move_phone(
    conn: &mut PgConnection,
    id: Uuid,
    phone_index: &str,
    phone_sealed: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE contacts SET phone_index = $2, phone_sealed = $3, updated_at = $4
           WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM contacts o WHERE o.phone_index = $2 AND o.id <> $1)"#,
        id,
        phone_index,
        phone_sealed,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn set_lid(
    conn: &mut PgConnection,
    id: Uuid,
    lid_index: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE contacts SET lid_index = $2, updated_at = $3 WHERE id = $1 AND lid_index IS NULL",
        id,
        lid_index,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the display name only if staff haven't named the contact yet (`force` overrides).
pub(crate) async fn set_name(
    conn: &mut PgConnection,
    id: Uuid,
    name_sealed: &[u8],
    tokens: &[String],
    force: bool,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE contacts SET name_sealed = $2, name_tokens = $3, updated_at = $5
           WHERE id = $1 AND ($4 OR name_sealed IS NULL)"#,
        id,
        name_sealed,
        tokens,
        force,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn set_profile(
    conn: &mut PgConnection,
    id: Uuid,
    profile_sealed: &[u8],
    tags: &[String],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE contacts SET profile_sealed = $2, tags = $3, updated_at = $4 WHERE id = $1",
        id,
        profile_sealed,
        tags,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Contact>> {
    sqlx::query_as!(
        Contact,
        r#"SELECT id, phone_index, lid_index, phone_sealed, name_sealed, profile_sealed, tags,
                  restricted_at, erased_at, created_at
           FROM contacts WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Several contacts in one round trip (list pages label their rows with these).
pub(crate) async fn get_many(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Contact>> {
    sqlx::query_as::<_, Contact>(
        r#"SELECT id, phone_index, lid_index, phone_sealed, name_sealed, profile_sealed, tags,
                  restricted_at, erased_at, created_at
           FROM contacts WHERE id = ANY($1)"#,
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// One row of the contact directory: the contact, its conversations and open requests.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DirectoryRow {
    #[sqlx(flatten)]
    pub(crate) contact: Contact,
    pub(crate) conversations: i64,
    pub(crate) last_message_at: Option<OffsetDateTime>,
    pub(crate) latest_conversation: Option<Uuid>,
    pub(crate) open_requests: i64,
}

pub(crate) struct DirectoryFilter {
    /// Blind-index tokens of every name word searched for.
    pub(crate) name_tokens: Option<Vec<String>>,
    /// Blind index of the phone number searched for.
    pub(crate) phone_index: Option<String>,
    /// Keyset cursor: rows created before this (created_at, id).
    pub(crate) before: Option<(OffsetDateTime, Uuid)>,
    pub(crate) limit: i64,
}

/// The contact directory, newest first; a search narrows it by name words or phone through
/// the blind indexes (the database never sees a name or number).
pub(crate) async fn directory(
    conn: &mut PgConnection,
    f: &DirectoryFilter,
) -> sqlx::Result<Vec<DirectoryRow>> {
    let (before_at, before_id) = f
        .before
        .map(|(a, i)| (Some(a), Some(i)))
        .unwrap_or((None, None));
    sqlx::query_as::<_, DirectoryRow>(
        r#"SELECT c.id, c.phone_index, c.lid_index, c.phone_sealed, c.name_sealed, c.profile_sealed,
                  c.tags, c.restricted_at, c.erased_at, c.created_at,
                  cv.n AS conversations, cv.last_at AS last_message_at, cv.latest AS latest_conversation,
                  (SELECT count(*) FROM dsr_requests r
                    WHERE r.tenant_id = c.tenant_id AND r.contact_id = c.id
                      AND r.status NOT IN ('completed', 'denied')) AS open_requests
           FROM contacts c
           LEFT JOIN LATERAL (
               SELECT count(*) AS n, max(v.last_message_at) AS last_at,
                      (array_agg(v.id ORDER BY v.last_message_at DESC))[1] AS latest
               FROM conversations v WHERE v.tenant_id = c.tenant_id AND v.contact_id = c.id
           ) cv ON true
           WHERE c.tenant_id = app_current_tenant()
             AND ($1::text[] IS NULL OR c.id IN (
                   SELECT t.contact_id FROM contact_name_tokens t
                   WHERE t.tenant_id = app_current_tenant() AND t.token = ANY($1::text[])
                   GROUP BY t.contact_id
                   HAVING count(DISTINCT t.token) = (SELECT count(DISTINCT x) FROM unnest($1::text[]) x)))
             AND ($2::text IS NULL OR c.phone_index = $2)
             AND ($3::timestamptz IS NULL OR (c.created_at, c.id) < ($3, $4::uuid))
           ORDER BY c.created_at DESC, c.id DESC
           LIMIT $5"#,
    )
    .bind(f.name_tokens.as_deref())
    .bind(f.phone_index.as_deref())
    .bind(before_at)
    .bind(before_id)
    .bind(f.limit)
    .fetch_all(conn)
    .await
}
