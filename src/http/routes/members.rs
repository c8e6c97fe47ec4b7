//! Members: invitations by one-time link, role changes, removal, reset links.

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Form, Router,
    extract::{Path, State},
    response::Response,
    routing::{get, post},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::wiring::App;
use crate::{
    accounts::{self, FormError},
    db,
    domain::account::Role,
    error::AppResult,
    http::{
        extract::{Admin, PageCtx, RequireRole, Viewer},
        middleware::redirect_with_flash,
        routes::{auth::form_error, portal::Shell},
    },
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/members", get(members_page))
        .route("/t/{slug}/members/invite", post(invite))
        .route("/t/{slug}/members/{user}/role", post(change_role))
        .route("/t/{slug}/members/{user}/remove", post(remove))
        .route("/t/{slug}/members/{user}/reset-link", post(reset_link))
        .route("/t/{slug}/invitations/{id}/revoke", post(revoke_invitation))
}

pub(crate) struct MemberView {
    pub(crate) user_id: Uuid,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) role: Role,
    pub(crate) is_me: bool,
}

pub(crate) struct InvitationView {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) expires: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "portal/members.html")]
pub(crate) struct MembersPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) members: Vec<MemberView>,
    pub(crate) invitations: Vec<InvitationView>,
    pub(crate) roles: [Role; 4],
    pub(crate) error: Option<&'static str>,
    /// A link to show once (invitation or reset), with what it is for.
    pub(crate) new_link: Option<(String, &'static str)>,
    /// Where an invitation was e-mailed (instead of showing its link), when e-mail is on.
    pub(crate) mailed_to: Option<String>,
    pub(crate) invite_email: String,
}

async fn load(
    state: &AppState,
    ctx: PageCtx,
    t: &crate::http::extract::TenantCtx,
) -> AppResult<MembersPage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let rows = db::memberships::members(&mut tx).await?;
    tx.commit().await?;
    let invitations = if t.can(Role::Admin) {
        db::invitations::pending_invitations(&state.db, t.id(), state.now()).await?
    } else {
        Vec::new()
    };
    let f = time::macros::format_description!("[year]-[month]-[day]");
    Ok(MembersPage {
        ctx,
        shell: Shell::load(state, t, "members").await?,
        members: rows
            .into_iter()
            .map(|m| MemberView {
                is_me: m.user_id == t.me.user.id,
                user_id: m.user_id,
                name: m.name,
                email: m.email,
                role: Role::try_from(m.role.as_str()).unwrap_or(Role::Viewer),
            })
            .collect(),
        invitations: invitations
            .into_iter()
            .map(|i| InvitationView {
                id: i.id,
                email: i.email,
                role: i.role,
                expires: i.expires_at.format(&f).unwrap_or_default(),
            })
            .collect(),
        roles: Role::ALL,
        error: None,
        new_link: None,
        mailed_to: None,
        invite_email: String::new(),
    })
}

async fn members_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Viewer>,
) -> AppResult<MembersPage> {
    load(&state, ctx, &t).await
}

fn public_link(state: &AppState, path: &str) -> String {
    let base = state.config.public_url.as_str().trim_end_matches('/');
    format!("{base}{path}")
}

#[derive(Deserialize)]
pub(crate) struct InviteForm {
    email: String,
    role: String,
}

async fn invite(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<InviteForm>,
) -> AppResult<Response> {
    let result = accounts::invite(&state, t.id(), t.role, &t.actor(), &f.email, &f.role).await;
    let mut page = load(&state, ctx, &t).await?;
    match result {
        Ok(token) => {
            page.invitations = load(&state, page.ctx.clone(), &t).await?.invitations;
            if crate::mail::enabled(&state) {
                page.mailed_to = Some(f.email.trim().to_lowercase());
            } else {
                page.new_link = Some((
                    public_link(&state, &format!("/invite/{token}")),
                    "members.invite_link",
                ));
            }
            Ok(axum::response::IntoResponse::into_response(page))
        }
        Err(FormError::Field(key)) => {
            page.error = Some(key);
            page.invite_email = f.email;
            Ok(form_error(page))
        }
        Err(FormError::Internal(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct RoleForm {
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Path((_slug, user)): Path<(String, Uuid)>,
    Form(f): Form<RoleForm>,
) -> AppResult<Response> {
    outcome(
        &state,
        ctx,
        &t,
        accounts::change_role(&state, t.id(), t.role, &t.actor(), user, &f.role).await,
        "members.role_changed",
    )
    .await
}

async fn remove(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Path((_slug, user)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    outcome(
        &state,
        ctx,
        &t,
        accounts::remove_member(&state, t.id(), t.role, &t.actor(), user).await,
        "members.removed",
    )
    .await
}

async fn outcome(
    state: &AppState,
    ctx: PageCtx,
    t: &crate::http::extract::TenantCtx,
    r: Result<(), FormError>,
    ok_key: &'static str,
) -> AppResult<Response> {
    match r {
        Ok(()) => Ok(redirect_with_flash(
            &format!("/t/{}/members", t.tenant.slug),
            true,
            ok_key,
        )),
        Err(FormError::Field(key)) => {
            let mut page = load(state, ctx, t).await?;
            page.error = Some(key);
            Ok(form_error(page))
        }
        Err(FormError::Internal(e)) => Err(e.into()),
    }
}

async fn reset_link(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Path((_slug, user)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    match accounts::issue_reset(&state, t.id(), t.role, &t.actor(), user).await {
        Ok(token) => {
            let mut page = load(&state, ctx, &t).await?;
            page.new_link = Some((
                public_link(&state, &format!("/reset/{token}")),
                "members.reset_link",
            ));
            Ok(axum::response::IntoResponse::into_response(page))
        }
        Err(e) => outcome(&state, ctx, &t, Err(e), "").await,
    }
}

async fn revoke_invitation(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_slug, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let revoked = accounts::revoke_invitation(&state, t.id(), &t.actor(), id)
        .await
        .map_err(|e| match e {
            FormError::Internal(e) => e.into(),
            FormError::Field(_) => crate::error::AppError::NotFound,
        })?;
    Ok(redirect_with_flash(
        &format!("/t/{}/members", t.tenant.slug),
        revoked,
        if revoked {
            "members.invitation_revoked"
        } else {
            "members.invitation_gone"
        },
    ))
}
