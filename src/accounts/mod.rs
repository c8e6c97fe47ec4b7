//! Account and membership operations: each a plain function over the database, called by
//! the HTTP handlers and usable from tests without HTTP. Every one that changes a tenant
//! records an audit entry in the same transaction.

use axum::extract::FromRef;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    auth::{INVITATION_LIFETIME, RESET_LIFETIME, password, tokens},
    clock::SharedClock,
    db::{
        self,
        audit::{self, Actor},
        invitations::NewInvitation,
        is_unique_violation,
        users::NewUser,
    },
    domain::{
        account::{Email, NewPassword, Role, TenantSlug},
        plans,
        policy::POLICY_VERSION,
    },
    state::AppState,
};

/// What account work uses, and nothing else: the pool, the clock, and whether e-mail is on
/// (invitations, resets and new-device notices are mailed then). Built from the process's
/// state with `FromRef`: `State<Accounts>` in a handler, `Accounts::from_ref(&state)`
/// elsewhere.
#[derive(Clone)]
pub(crate) struct Accounts {
    /// Connected as the non-owner application role: row-level security applies.
    pub(crate) db: PgPool,
    pub(crate) clock: SharedClock,
    mail_on: bool,
}

impl Accounts {
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}

impl FromRef<AppState> for Accounts {
    fn from_ref(state: &AppState) -> Accounts {
        Accounts {
            db: state.db.clone(),
            clock: state.clock.clone(),
            mail_on: crate::mail::enabled(state),
        }
    }
}

/// A user-facing failure: a translation key for the form, or an internal error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FormError {
    #[error("{0}")]
    Field(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for FormError {
    fn from(e: sqlx::Error) -> Self {
        FormError::Internal(e.into())
    }
}

pub(crate) struct Signup<'a> {
    pub(crate) name: &'a str,
    pub(crate) email: &'a str,
    pub(crate) password: &'a str,
    pub(crate) business: &'a str,
    pub(crate) slug: &'a str,
    pub(crate) plan: &'a str,
    pub(crate) accept_policy: bool,
    pub(crate) language: &'a str,
}

pub(crate) struct Created {
    pub(crate) user_id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) slug: String,
}

fn clean_name(raw: &str, key: &'static str) -> Result<String, FormError> {
    let n = raw.trim();
    if n.is_empty() || n.chars().count() > 120 || n.chars().any(char::is_control) {
        return Err(FormError::Field(key));
    }
    Ok(n.to_owned())
}

/// Creates a user, their tenant and the owner membership, recording the policy version
/// they accepted.
pub(crate) async fn sign_up(state: &Accounts, s: Signup<'_>) -> Result<Created, FormError> {
    if !s.accept_policy {
        return Err(FormError::Field("form.policy.required"));
    }
    let name = clean_name(s.name, "form.name.invalid")?;
    let email = Email::try_from(s.email).map_err(FormError::Field)?;
    let pw = NewPassword::parse(s.password, Some(&email)).map_err(FormError::Field)?;
    let business = clean_name(s.business, "form.business.invalid")?;
    let slug_raw = if s.slug.trim().is_empty() {
        TenantSlug::suggest(&business)
    } else {
        s.slug.to_owned()
    };
    let slug = TenantSlug::try_from(slug_raw.as_str()).map_err(FormError::Field)?;
    let plan = plans::by_id(s.plan)
        .map(|p| p.id)
        .unwrap_or(plans::DEFAULT_PLAN);
    let hash = password::hash(pw.expose()).await?;
    let now = state.now();
    let (user_id, tenant_id) = (Uuid::now_v7(), Uuid::now_v7());

    let mut tx = state.db.begin().await?;
    db::users::insert_user(
        &mut tx,
        NewUser {
            id: user_id,
            email: email.as_str(),
            name: &name,
            password_hash: &hash,
            policy_version: POLICY_VERSION,
            language: Some(s.language),
        },
        now,
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "users_email_key") {
            FormError::Field("form.email.taken")
        } else {
            e.into()
        }
    })?;
    db::tenants::insert_tenant(&mut tx, tenant_id, slug.as_str(), &business, plan, now)
        .await
        .map_err(|e| {
            if is_unique_violation(&e, "tenants_slug_key") {
                FormError::Field("form.slug.taken")
            } else {
                e.into()
            }
        })?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant_id.to_string())
        .execute(&mut *tx)
        .await?;
    db::memberships::add_member(&mut tx, tenant_id, user_id, Role::Owner, now).await?;
    let lang = if s.language == "en" { "en" } else { "pt-BR" };
    db::tenants::insert_tenant_settings(&mut tx, tenant_id, lang, now).await?;
    audit::record(
        &mut tx,
        tenant_id,
        &Actor::user(user_id, email.as_str()),
        "tenant.created",
        slug.as_str(),
        json!({ "plan": plan, "policy_version": POLICY_VERSION }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Created {
        user_id,
        tenant_id,
        slug: slug.to_string(),
    })
}

/// Records the login in the audit log of every tenant the user belongs to.
pub(crate) async fn audit_login(
    state: &Accounts,
    user_id: Uuid,
    email: &str,
    method: &str,
) -> anyhow::Result<()> {
    let now = state.now();
    for t in db::tenants::tenants_of_user(&state.db, user_id).await? {
        if let Some(tenant) = db::tenants::tenant_by_slug(&state.db, &t.slug).await? {
            let mut tx =
                db::TenantTx::begin(&state.db, tenant.id, Actor::user(user_id, email), now).await?;
            tx.audit("auth.login", email, json!({ "method": method }))
                .await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Records an account-level event (two-factor on/off) in every tenant the user belongs to.
pub(crate) async fn audit_user_event(
    state: &Accounts,
    user_id: Uuid,
    email: &str,
    action: &str,
) -> anyhow::Result<()> {
    let now = state.now();
    for t in db::tenants::tenants_of_user(&state.db, user_id).await? {
        if let Some(tenant) = db::tenants::tenant_by_slug(&state.db, &t.slug).await? {
            let mut tx =
                db::TenantTx::begin(&state.db, tenant.id, Actor::user(user_id, email), now).await?;
            tx.audit(action, email, json!({})).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Who may grant or change which role: only owners touch owners.
fn may_manage(actor: Role, target_role: Role) -> bool {
    actor.at_least(Role::Admin) && (actor == Role::Owner || target_role != Role::Owner)
}

/// An invitation link for `email` with `role`. Returns the one-time token (shown once).
pub(crate) async fn invite(
    state: &Accounts,
    tenant_id: Uuid,
    actor_role: Role,
    actor: &Actor,
    email: &str,
    role: &str,
) -> Result<String, FormError> {
    let email = Email::try_from(email).map_err(FormError::Field)?;
    let role = Role::try_from(role).map_err(FormError::Field)?;
    if !may_manage(actor_role, role) {
        return Err(FormError::Field("members.only_owner_owner"));
    }
    let now = state.now();
    let tenant = db::tenants::tenant_by_id(&state.db, tenant_id)
        .await?
        .ok_or(FormError::Field("error.not_found"))?;
    let plan = plans::by_id(&tenant.plan).unwrap_or(&plans::PLANS[0]);
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let members = db::memberships::members(&mut tx).await?;
    if members.iter().any(|m| m.email == email.as_str()) {
        return Err(FormError::Field("members.already_member"));
    }
    let pending = db::invitations::pending_invitation_count(&state.db, tenant_id, now).await?;
    if members.len() as i64 + pending >= i64::from(plan.seats) {
        return Err(FormError::Field("members.seats_full"));
    }
    let (token, hash) = tokens::new_link_token();
    let invitation_id = db::invitations::create_invitation(
        &state.db,
        NewInvitation {
            tenant_id,
            email: email.as_str(),
            role,
            token_hash: &hash,
            invited_by: actor.id.unwrap_or_default(),
            expires_at: now + INVITATION_LIFETIME,
        },
        now,
    )
    .await?;
    tx.audit(
        "member.invited",
        email.as_str(),
        json!({ "role": role.as_str() }),
    )
    .await?;
    if state.mail_on {
        // The e-mail carries its own link, minted when it is sent; this token is shown to
        // nobody.
        let lang: Option<String> =
            sqlx::query_scalar("SELECT language FROM tenant_settings WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_optional(&mut *tx)
                .await?;
        crate::mail::enqueue(
            &mut tx,
            crate::mail::NewMail {
                key: format!("invitation:{invitation_id}"),
                kind: crate::mail::Kind::Invitation,
                tenant_id: Some(tenant_id),
                user_id: None,
                to: email.as_str().to_owned(),
                lang: crate::mail::user_lang(lang.as_deref()),
                params: json!({
                    "invitation_id": invitation_id,
                    "tenant_name": tenant.name,
                    "inviter": actor.label,
                    "role": role.as_str(),
                }),
            },
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(token)
}

/// Withdraws an invitation not yet accepted; false when it was already used or withdrawn.
pub(crate) async fn revoke_invitation(
    state: &Accounts,
    tenant_id: Uuid,
    actor: &Actor,
    id: Uuid,
) -> Result<bool, FormError> {
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    if !db::invitations::revoke_invitation(&mut tx, tenant_id, id, now).await? {
        return Ok(false);
    }
    tx.audit("member.invitation_revoked", &id.to_string(), json!({}))
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// "Forgot password": enqueues a reset e-mail for the account with this address, if there
/// is one. The caller answers the same either way. Requests for one account within the same
/// few minutes share one e-mail (its idempotency key names the window).
pub(crate) async fn request_reset_email(state: &Accounts, email: &str) -> anyhow::Result<()> {
    let email = email.trim().to_lowercase();
    let Some(user) = db::users::user_by_email(&state.db, &email).await? else {
        return Ok(());
    };
    let now = state.now();
    let window = now
        .unix_timestamp()
        .div_euclid(FORGOT_WINDOW.whole_seconds());
    let mut tx = state.db.begin().await?;
    crate::mail::enqueue(
        &mut tx,
        crate::mail::NewMail {
            key: format!("password_reset:{}:{window}", user.id),
            kind: crate::mail::Kind::PasswordReset,
            tenant_id: None,
            user_id: Some(user.id),
            to: user.email.clone(),
            lang: crate::mail::user_lang(user.language.as_deref()),
            params: json!({}),
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Repeated "forgot password" requests within this window send one e-mail.
pub(crate) const FORGOT_WINDOW: time::Duration = time::Duration::minutes(5);

/// Joins the invitation's tenant as `user_id` (whose e-mail must be the invited one).
pub(crate) async fn accept_invitation(
    state: &Accounts,
    token: &str,
    user_id: Uuid,
    user_email: &str,
) -> Result<String, FormError> {
    let now = state.now();
    let inv = db::invitations::invitation_by_token(&state.db, &tokens::hash_link_token(token))
        .await?
        .filter(|i| i.usable(now))
        .ok_or(FormError::Field("invite.invalid"))?;
    if inv.email != user_email {
        return Err(FormError::Field("invite.wrong_account"));
    }
    let role = Role::try_from(inv.role.as_str()).map_err(FormError::Field)?;
    let tenant = db::tenants::tenant_by_id(&state.db, inv.tenant_id)
        .await?
        .ok_or(FormError::Field("invite.invalid"))?;
    let mut tx = db::TenantTx::begin(
        &state.db,
        inv.tenant_id,
        Actor::user(user_id, user_email),
        now,
    )
    .await?;
    if !db::invitations::consume_invitation(&mut tx, inv.id, now).await? {
        return Err(FormError::Field("invite.invalid"));
    }
    if db::memberships::role_in_tenant(&mut tx, user_id)
        .await?
        .is_none()
    {
        db::memberships::add_member(&mut tx, inv.tenant_id, user_id, role, now).await?;
    }
    tx.audit(
        "member.joined",
        user_email,
        json!({ "role": role.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(tenant.slug)
}

/// Creates the account for an invitation and joins; returns (user id, tenant slug).
pub(crate) async fn accept_invitation_new_account(
    state: &Accounts,
    token: &str,
    name: &str,
    password_raw: &str,
    accept_policy: bool,
    language: &str,
) -> Result<(Uuid, String), FormError> {
    if !accept_policy {
        return Err(FormError::Field("form.policy.required"));
    }
    let now = state.now();
    let inv = db::invitations::invitation_by_token(&state.db, &tokens::hash_link_token(token))
        .await?
        .filter(|i| i.usable(now))
        .ok_or(FormError::Field("invite.invalid"))?;
    let email = Email::try_from(inv.email.as_str()).map_err(FormError::Field)?;
    if db::users::user_by_email(&state.db, email.as_str())
        .await?
        .is_some()
    {
        return Err(FormError::Field("invite.login_first"));
    }
    let name = clean_name(name, "form.name.invalid")?;
    let pw = NewPassword::parse(password_raw, Some(&email)).map_err(FormError::Field)?;
    let hash = password::hash(pw.expose()).await?;
    let user_id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    db::users::insert_user(
        &mut tx,
        NewUser {
            id: user_id,
            email: email.as_str(),
            name: &name,
            password_hash: &hash,
            policy_version: POLICY_VERSION,
            language: Some(language),
        },
        now,
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e, "users_email_key") {
            FormError::Field("invite.login_first")
        } else {
            e.into()
        }
    })?;
    tx.commit().await?;
    let slug = accept_invitation(state, token, user_id, email.as_str()).await?;
    Ok((user_id, slug))
}

/// Changes a member's role. Owners alone manage owners, and the last owner stays an owner.
pub(crate) async fn change_role(
    state: &Accounts,
    tenant_id: Uuid,
    actor_role: Role,
    actor: &Actor,
    target: Uuid,
    new_role: &str,
) -> Result<(), FormError> {
    let new_role = Role::try_from(new_role).map_err(FormError::Field)?;
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let owners = db::memberships::lock_owner_count(&mut tx).await?;
    let current = db::memberships::role_in_tenant(&mut tx, target)
        .await?
        .ok_or(FormError::Field("error.not_found"))?;
    if !may_manage(actor_role, current) || !may_manage(actor_role, new_role) {
        return Err(FormError::Field("members.only_owner_owner"));
    }
    if current == Role::Owner && new_role != Role::Owner && owners <= 1 {
        return Err(FormError::Field("members.last_owner"));
    }
    db::memberships::set_member_role(&mut tx, target, new_role).await?;
    tx.audit(
        "member.role_changed",
        &target.to_string(),
        json!({ "from": current.as_str(), "to": new_role.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a member and ends all their sessions at once.
pub(crate) async fn remove_member(
    state: &Accounts,
    tenant_id: Uuid,
    actor_role: Role,
    actor: &Actor,
    target: Uuid,
) -> Result<(), FormError> {
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let owners = db::memberships::lock_owner_count(&mut tx).await?;
    let current = db::memberships::role_in_tenant(&mut tx, target)
        .await?
        .ok_or(FormError::Field("error.not_found"))?;
    if !may_manage(actor_role, current) {
        return Err(FormError::Field("members.only_owner_owner"));
    }
    if current == Role::Owner && owners <= 1 {
        return Err(FormError::Field("members.last_owner"));
    }
    db::memberships::remove_member(&mut tx, target).await?;
    db::sessions::revoke_all_sessions(&mut tx, target, None, now).await?;
    db::resets::revoke_resets(&mut tx, target, now).await?;
    tx.audit(
        "member.removed",
        &target.to_string(),
        json!({ "role": current.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A one-time password-reset link for a member, issued by an admin (no mail server needed).
///
/// The link is a credential the admin holds for someone else's account, so it is only for
/// members who belong to this tenant alone — an admin here must not be able to take over an
/// account that has power elsewhere — and owners only by owners. Because memberships change,
/// the same is checked again when the link is used ([`complete_reset`]).
pub(crate) async fn issue_reset(
    state: &Accounts,
    tenant_id: Uuid,
    actor_role: Role,
    actor: &Actor,
    target: Uuid,
) -> Result<String, FormError> {
    let now = state.now();
    let mut tx = db::TenantTx::begin(&state.db, tenant_id, actor.clone(), now).await?;
    let role = db::memberships::role_in_tenant(&mut tx, target)
        .await?
        .ok_or(FormError::Field("error.not_found"))?;
    if !may_manage(actor_role, role) {
        return Err(FormError::Field("members.only_owner_owner"));
    }
    if !belongs_only_to(&mut tx, target, tenant_id).await? {
        return Err(FormError::Field("members.reset_other_tenants"));
    }
    let (token, hash) = tokens::new_link_token();
    db::resets::create_reset(
        &state.db,
        target,
        tenant_id,
        &hash,
        actor.id.unwrap_or_default(),
        now,
        now + RESET_LIFETIME,
    )
    .await?;
    tx.audit("member.reset_link_issued", &target.to_string(), json!({}))
        .await?;
    tx.commit().await?;
    Ok(token)
}

/// Whether the user's only membership is in `tenant_id` (inside the caller's transaction).
async fn belongs_only_to(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    tenant_id: Uuid,
) -> sqlx::Result<bool> {
    Ok(db::memberships::membership_tenants(conn, user_id).await? == [tenant_id])
}

/// Sets a new password from a reset link (once), ending every session of that user.
///
/// The link is re-authorised as it is used: the user must still belong to the issuing
/// tenant and to no other (the user row is locked, so joining a tenant can't race this).
/// A link that fails the check is spent and the refusal audited in the issuing tenant.
pub(crate) async fn complete_reset(
    state: &Accounts,
    token: &str,
    password_raw: &str,
) -> Result<Uuid, FormError> {
    let now = state.now();
    let hash_tok = tokens::hash_link_token(token);
    let user_id = db::resets::reset_user(&state.db, &hash_tok, now)
        .await?
        .ok_or(FormError::Field("reset.invalid"))?;
    let user = db::users::user_by_id(&state.db, user_id)
        .await?
        .ok_or(FormError::Field("reset.invalid"))?;
    let email = Email::try_from(user.email.as_str()).map_err(FormError::Field)?;
    let pw = NewPassword::parse(password_raw, Some(&email)).map_err(FormError::Field)?;
    let hash = password::hash(pw.expose()).await?;
    let mut tx = state.db.begin().await?;
    db::users::lock_user(&mut tx, user_id).await?;
    let grant = db::resets::consume_reset(&mut tx, &hash_tok, now)
        .await?
        .ok_or(FormError::Field("reset.invalid"))?;
    let Some(tenant_id) = grant.tenant_id else {
        // No issuing tenant: only a self-service link (sent to the account's own address).
        let self_service: bool =
            sqlx::query_scalar("SELECT self_service FROM password_resets WHERE token_hash = $1")
                .bind(&hash_tok)
                .fetch_one(&mut *tx)
                .await?;
        if !self_service {
            return Err(FormError::Field("reset.invalid"));
        }
        db::users::set_password_in(&mut tx, grant.user_id, &hash, now).await?;
        db::sessions::revoke_all_sessions(&mut tx, grant.user_id, None, now).await?;
        tx.commit().await?;
        audit_user_event(state, grant.user_id, &user.email, "member.password_reset").await?;
        return Ok(grant.user_id);
    };
    let allowed = belongs_only_to(&mut tx, grant.user_id, tenant_id).await?;
    db::set_tenant(&mut tx, tenant_id).await?;
    let actor = Actor::user(grant.user_id, &user.email);
    let subject = grant.user_id.to_string();
    if !allowed {
        tracing::warn!(
            tenant_id = %tenant_id,
            "reset link refused: its user no longer belongs to the issuing tenant alone"
        );
        audit::record(
            &mut tx,
            tenant_id,
            &actor,
            "member.reset_link_refused",
            &subject,
            json!({}),
            now,
        )
        .await?;
        tx.commit().await?;
        return Err(FormError::Field("reset.invalid"));
    }
    db::users::set_password_in(&mut tx, grant.user_id, &hash, now).await?;
    db::sessions::revoke_all_sessions(&mut tx, grant.user_id, None, now).await?;
    audit::record(
        &mut tx,
        tenant_id,
        &actor,
        "member.password_reset",
        &subject,
        json!({}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(grant.user_id)
}

/// Changes one's own password (the current one must be right) and ends other sessions.
pub(crate) async fn change_password(
    state: &Accounts,
    user_id: Uuid,
    keep_session: Uuid,
    current: &str,
    new: &str,
) -> Result<(), FormError> {
    let user = db::users::user_by_id(&state.db, user_id)
        .await?
        .ok_or(FormError::Field("error.not_found"))?;
    if !password::verify(current, Some(&user.password_hash)).await? {
        return Err(FormError::Field("account.password.wrong"));
    }
    let email = Email::try_from(user.email.as_str()).map_err(FormError::Field)?;
    let pw = NewPassword::parse(new, Some(&email)).map_err(FormError::Field)?;
    let hash = password::hash(pw.expose()).await?;
    let now = state.now();
    db::users::set_password(&state.db, user_id, &hash, now).await?;
    let mut conn = state.db.acquire().await?;
    db::sessions::revoke_all_sessions(&mut conn, user_id, Some(keep_session), now).await?;
    Ok(())
}

/// Records the device (browser user agent) a session starts from; the first sign-in from a
/// device not seen before — for a user who has signed in from another one — e-mails them.
pub(crate) async fn note_device(
    state: &Accounts,
    user_id: Uuid,
    user_agent: &str,
    ip: &str,
) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    let now = state.now();
    let device = hex::encode(Sha256::digest(user_agent.as_bytes()));
    let mut tx = state.db.begin().await?;
    let new: Option<String> = sqlx::query_scalar(
        r#"INSERT INTO user_devices (user_id, device_hash, first_seen_at) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING RETURNING device_hash"#,
    )
    .bind(user_id)
    .bind(&device)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if new.is_some() && state.mail_on {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM user_devices WHERE user_id = $1 AND device_hash <> $2",
        )
        .bind(user_id)
        .bind(&device)
        .fetch_one(&mut *tx)
        .await?;
        if others > 0
            && let Some(user) = db::users::user_by_id(&state.db, user_id).await?
        {
            let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
            let shown: String = user_agent.chars().take(160).collect();
            crate::mail::enqueue(
                &mut tx,
                crate::mail::NewMail {
                    key: format!("new_device:{user_id}:{device}"),
                    kind: crate::mail::Kind::NewDevice,
                    tenant_id: None,
                    user_id: Some(user_id),
                    to: user.email,
                    lang: crate::mail::user_lang(user.language.as_deref()),
                    params: json!({
                        "device": if shown.is_empty() { "?".to_owned() } else { shown },
                        "ip": ip,
                        "at": now.format(&f).unwrap_or_default(),
                    }),
                },
                now,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes sessions and login challenges that can no longer be used.
pub(crate) const SESSION_SWEEP: &str = "session_sweep";

/// The periodic session sweep (no payload): dead sessions and challenges, and sent mail
/// past its keeping time.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SessionSweep {}

impl crate::db::jobs::BackgroundJob for SessionSweep {
    const KIND: &'static str = SESSION_SWEEP;
    type Context = Accounts;

    fn dedupe_key(&self) -> Option<String> {
        Some(format!("periodic:{}", Self::KIND))
    }

    async fn run(
        self,
        state: &Accounts,
        _: &crate::db::jobs::JobMeta,
    ) -> anyhow::Result<crate::db::jobs::Outcome> {
        let n = db::sessions::delete_dead_sessions(&state.db, state.now()).await?;
        let mails = crate::mail::prune(&state.db, state.now()).await?;
        tracing::info!(removed = n, mails, "session sweep");
        Ok(crate::db::jobs::Outcome::Done)
    }
}
