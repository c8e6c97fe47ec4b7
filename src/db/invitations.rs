//! Invitations to join a tenant: created by an admin, used once by the invitee.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::account::Role;

#[derive(Clone, Debug)]
pub(crate) struct Invitation {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) email: String,
    pub(crate) role: String,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) created_at: OffsetDateTime,
    pub(crate) expires_at: OffsetDateTime,
    pub(crate) accepted_at: Option<OffsetDateTime>,
    pub(crate) revoked_at: Option<OffsetDateTime>,
}

impl Invitation {
    pub(crate) fn usable(&self, now: OffsetDateTime) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

pub(crate) struct NewInvitation<'a> {
    pub(crate) tenant_id: Uuid,
    pub(crate) email: &'a str,
    pub(crate) role: Role,
    pub(crate) token_hash: &'a str,
    pub(crate) invited_by: Uuid,
    pub(crate) expires_at: OffsetDateTime,
}

pub(crate) async fn create_invitation(
    pool: &PgPool,
    i: NewInvitation<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query!(
        r#"INSERT INTO invitations (id, tenant_id, email, role, token_hash, invited_by, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        id,
        i.tenant_id,
        i.email,
        i.role.as_str(),
        i.token_hash,
        i.invited_by,
        now,
        i.expires_at
    )
    .execute(pool)
    .await?;
    Ok(id)
}

pub(crate) async fn pending_invitations(
    pool: &PgPool,
    tenant_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<Invitation>> {
    sqlx::query_as!(
        Invitation,
        r#"SELECT id, tenant_id, email, role, created_at, expires_at, accepted_at, revoked_at
           FROM invitations WHERE tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2
           ORDER BY created_at DESC"#,
        tenant_id,
        now
    )
    .fetch_all(pool)
    .await
}

pub(crate) async fn pending_invitation_count(
    pool: &PgPool,
    tenant_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM invitations
           WHERE tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2"#,
        tenant_id,
        now
    )
    .fetch_one(pool)
    .await
}

pub(crate) async fn invitation_by_token(
    pool: &PgPool,
    token_hash: &str,
) -> sqlx::Result<Option<Invitation>> {
    sqlx::query_as!(
        Invitation,
        r#"SELECT id, tenant_id, email, role, created_at, expires_at, accepted_at, revoked_at
           FROM invitations WHERE token_hash = $1"#,
        token_hash
    )
    .fetch_optional(pool)
    .await
}

/// Marks an invitation used; `false` if it was already used, revoked or expired (so a link
/// is accepted once, even under concurrent clicks).
pub(crate) async fn consume_invitation(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE invitations SET accepted_at = $2
           WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2"#,
        id,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn revoke_invitation(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE invitations SET revoked_at = $3 WHERE id = $1 AND tenant_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        id,
        tenant_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
